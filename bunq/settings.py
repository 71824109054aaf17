"""Settings: the one place that reads the environment; every process builds one frozen `Settings`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from bunq.errors import ConfigError

DEFAULT_PORT = 6790
DEFAULT_TCP_PORT = 6789  # bunqueue's
DEFAULT_SLOTS = 256
MAX_SLOTS = 4096  # a slot must fit in the 12 spare bits of a UUID v7
LOG_LEVELS = tuple(name.lower() for name in logging.getLevelNamesMapping())
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")
UNBOUNDED = 1 << 40


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in TRUE + FALSE:
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw in TRUE


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _rate_limit(env: Mapping[str, str]) -> int:
    """RATE_LIMIT_MAX_REQUESTS: unset, 0 or Infinity leave the HTTP rate limit off."""
    raw = env.get("RATE_LIMIT_MAX_REQUESTS", "").strip()
    if raw.lower() in ("", "0", "infinity", "inf"):
        return 0
    return _int(env, "RATE_LIMIT_MAX_REQUESTS", 0, 0, UNBOUNDED)


def temp_dir(env: Mapping[str, str]) -> str:
    """`$TMPDIR` (or `$TEMP`, `$TMP`), else /tmp: where the default `ipc://` sockets go. The rule of
    `tempfile.gettempdir` without its writability probe; importing tempfile (and with it shutil, random, bz2
    and lzma) cost the supervisor, which needs nothing else of it, about 1 MB."""
    return next((env[name] for name in ("TMPDIR", "TEMP", "TMP") if env.get(name)), "/tmp")


@dataclass(frozen=True)
class Thresholds:
    """Of the aggregator's warning events; 0 turns `queue_size`, `memory_mb` and `storage_mb` off."""

    queue_idle_ms: int = 30_000
    queue_size: int = 0
    worker_overload_ms: int = 30_000
    memory_mb: int = 0
    storage_mb: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Thresholds:
        return cls(
            queue_idle_ms=_int(env, "QUEUE_IDLE_THRESHOLD_MS", 30_000, 0, UNBOUNDED),
            queue_size=_int(env, "QUEUE_SIZE_THRESHOLD", 0, 0, UNBOUNDED),
            worker_overload_ms=_int(env, "WORKER_OVERLOAD_THRESHOLD_MS", 30_000, 0, UNBOUNDED),
            memory_mb=_int(env, "MEMORY_WARNING_MB", 0, 0, UNBOUNDED),
            storage_mb=_int(env, "STORAGE_WARNING_MB", 0, 0, UNBOUNDED),
        )


@dataclass(frozen=True)
class Settings:
    http_host: str = "0.0.0.0"
    http_port: int = DEFAULT_PORT
    tcp_host: str = "0.0.0.0"
    tcp_port: int = 0  # bunqueue's TCP protocol; 0: not served (from_env defaults to 6789)
    tcp_idle_timeout_ms: int = 60_000  # a TCP frame left incomplete this long closes its connection
    shards: int = 1
    fronts: int = 1
    slots: int = DEFAULT_SLOTS
    data_dir: str = "./data"
    sync_full: bool = False
    flush_interval_ms: int = 10
    shard_endpoints: tuple[str, ...] = ()
    shard_event_endpoints: tuple[str, ...] = ()
    events_endpoint: str = ""
    aggregator_endpoint: str = ""
    webhook_allow: tuple[str, ...] = ()
    webhook_timeout_ms: int = 10_000
    worker_timeout_ms: int = 60_000
    auth_tokens: tuple[str, ...] = ()
    require_auth_for_metrics: bool = False
    cors_origins: tuple[str, ...] = ("*",)
    rate_limit_window_ms: int = 60_000
    rate_limit_max: int = 0
    rate_limit_cleanup_ms: int = 60_000
    header_timeout_ms: int = 10_000
    max_header_bytes: int = 64 * 1024
    body_timeout_ms: int = 30_000
    min_free_disk_mb: int = 64
    request_timeout_ms: int = 10_000
    max_body_bytes: int = 32 * 1024 * 1024
    completed_cache: int = 10_000
    log_level: str = "info"
    thresholds: Thresholds = Thresholds()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        cpus = os.cpu_count() or 1
        port = _int(env, "HTTP_PORT", DEFAULT_PORT, 0, 65535)
        shards = _int(env, "BUNQ_SHARDS", cpus, 1, 256)
        run_dir = env.get("BUNQ_RUN_DIR") or os.path.join(temp_dir(env), f"bunq-{port}")
        shard_eps = _list(env, "BUNQ_SHARD_ENDPOINTS") or tuple(f"ipc://{run_dir}/shard-{i}.req" for i in range(shards))
        event_eps = _list(env, "BUNQ_SHARD_EVENT_ENDPOINTS") or tuple(
            f"ipc://{run_dir}/shard-{i}.pub" for i in range(shards)
        )
        if len(shard_eps) != shards or len(event_eps) != shards:
            raise ConfigError("BUNQ_SHARD_ENDPOINTS and BUNQ_SHARD_EVENT_ENDPOINTS need one entry per shard")
        sync = _choice(env, "BUNQ_SYNC", "normal", ("normal", "full"))
        return cls(
            http_host=env.get("HTTP_HOST", "0.0.0.0"),
            http_port=port,
            tcp_host=env.get("TCP_HOST") or env.get("HTTP_HOST", "0.0.0.0"),
            tcp_port=_int(env, "TCP_PORT", DEFAULT_TCP_PORT, 0, 65535),
            tcp_idle_timeout_ms=_int(env, "TCP_IDLE_TIMEOUT_MS", 60_000, 100, 3_600_000),
            shards=shards,
            fronts=_int(env, "BUNQ_FRONTS", max(1, cpus // 2), 1, 256),
            slots=_int(env, "BUNQ_SLOTS", DEFAULT_SLOTS, 1, MAX_SLOTS),
            data_dir=env.get("BUNQ_DATA_DIR", "./data"),
            sync_full=sync == "full",
            flush_interval_ms=_int(env, "BUNQ_FLUSH_MS", 10, 1, 10_000),
            shard_endpoints=shard_eps,
            shard_event_endpoints=event_eps,
            events_endpoint=env.get("BUNQ_EVENTS_ENDPOINT") or f"ipc://{run_dir}/events",
            aggregator_endpoint=env.get("BUNQ_AGGREGATOR_ENDPOINT") or f"ipc://{run_dir}/aggregator",
            webhook_allow=_list(env, "BUNQ_WEBHOOK_ALLOW"),
            webhook_timeout_ms=_int(env, "BUNQ_WEBHOOK_TIMEOUT_MS", 10_000, 100, 600_000),
            worker_timeout_ms=_int(env, "BUNQ_WORKER_TIMEOUT_MS", 60_000, 1000, 86_400_000),
            auth_tokens=_list(env, "AUTH_TOKENS"),
            # METRICS_AUTH is bunqueue's name for it: either one closes /prometheus
            require_auth_for_metrics=_bool(env, "BUNQ_REQUIRE_AUTH_FOR_METRICS") | _bool(env, "METRICS_AUTH"),
            cors_origins=_list(env, "CORS_ALLOW_ORIGIN") or ("*",),
            rate_limit_window_ms=_int(env, "RATE_LIMIT_WINDOW_MS", 60_000, 1, 86_400_000),
            rate_limit_max=_rate_limit(env),
            rate_limit_cleanup_ms=_int(env, "RATE_LIMIT_CLEANUP_MS", 60_000, 100, 86_400_000),
            header_timeout_ms=_int(env, "BUNQ_HEADER_TIMEOUT_MS", 10_000, 100, 600_000),
            max_header_bytes=_int(env, "BUNQ_MAX_HEADER_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            body_timeout_ms=_int(env, "BUNQ_BODY_TIMEOUT_MS", 30_000, 100, 600_000),
            min_free_disk_mb=_int(env, "BUNQ_MIN_FREE_DISK_MB", 64, 0, 1 << 30),
            request_timeout_ms=_int(env, "BUNQ_REQUEST_TIMEOUT_MS", 10_000, 100, 600_000),
            max_body_bytes=_int(env, "BUNQ_MAX_BODY_BYTES", 32 * 1024 * 1024, 1024, 1 << 31),
            completed_cache=_int(env, "BUNQ_COMPLETED_CACHE", 10_000, 0, 10_000_000),
            log_level=_choice(env, "BUNQ_LOG_LEVEL", "info", LOG_LEVELS),
            thresholds=Thresholds.from_env(env),
        )

    def ipc_dirs(self) -> list[str]:
        """Directories that ipc:// endpoints live in (created before binding)."""
        eps = (*self.shard_endpoints, *self.shard_event_endpoints, self.events_endpoint, self.aggregator_endpoint)
        return sorted({os.path.dirname(ep[len("ipc://") :]) for ep in eps if ep.startswith("ipc://")})
