"""Settings: every variable read once through `Settings.from_env`; defaults as documented, and a bad value
is refused at start-up with a message naming the variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bunq.cli import main
from bunq.errors import ConfigError
from bunq.settings import Settings, Thresholds
from shards.reshard import check_layout, prepare
from shards.server import main as shard_main

README = Path(__file__).parents[3] / "README.md"


class Recording(dict[str, str]):
    """An environment that notes every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_defaults() -> None:
    settings = Settings.from_env({})
    cpus = os.cpu_count() or 1
    assert (settings.http_host, settings.http_port, settings.shards, settings.fronts) == (
        "0.0.0.0",
        6790,
        cpus,
        max(1, cpus // 2),
    )
    assert (settings.slots, settings.data_dir, settings.sync_full, settings.flush_interval_ms) == (
        256,
        "./data",
        False,
        10,
    )
    assert (settings.webhook_allow, settings.webhook_timeout_ms, settings.worker_timeout_ms) == ((), 10_000, 60_000)
    assert (settings.auth_tokens, settings.require_auth_for_metrics, settings.cors_origins) == ((), False, ("*",))
    assert (settings.rate_limit_window_ms, settings.rate_limit_max, settings.rate_limit_cleanup_ms) == (
        60_000,
        0,
        60_000,
    )
    assert (settings.header_timeout_ms, settings.max_header_bytes, settings.body_timeout_ms) == (10_000, 65536, 30_000)
    assert (settings.min_free_disk_mb, settings.request_timeout_ms, settings.max_body_bytes) == (64, 10_000, 1 << 25)
    assert (settings.completed_cache, settings.log_level) == (10_000, "info")
    assert settings.thresholds == Thresholds(
        queue_idle_ms=30_000, queue_size=0, worker_overload_ms=30_000, memory_mb=0, storage_mb=0
    )


def test_thresholds_and_switches_are_read() -> None:
    env = {
        "QUEUE_IDLE_THRESHOLD_MS": "1000",
        "QUEUE_SIZE_THRESHOLD": "50",
        "WORKER_OVERLOAD_THRESHOLD_MS": "2000",
        "MEMORY_WARNING_MB": "512",
        "STORAGE_WARNING_MB": "1024",
        "BUNQ_REQUIRE_AUTH_FOR_METRICS": "off",
        "BUNQ_LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    assert settings.thresholds == Thresholds(1000, 50, 2000, 512, 1024)
    assert (settings.require_auth_for_metrics, settings.log_level) == (False, "warning")
    assert Settings.from_env({"BUNQ_REQUIRE_AUTH_FOR_METRICS": "Yes"}).require_auth_for_metrics is True
    assert Settings.from_env({"METRICS_AUTH": "TRUE"}).require_auth_for_metrics is True  # bunqueue's name
    assert Settings.from_env({"METRICS_AUTH": "on", "BUNQ_REQUIRE_AUTH_FOR_METRICS": "off"}).require_auth_for_metrics


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_PORT", "http"),
        ("HTTP_PORT", "-1"),
        ("BUNQ_SHARDS", "0"),
        ("BUNQ_FRONTS", "two"),
        ("BUNQ_FLUSH_MS", "-5"),
        ("BUNQ_SYNC", "sometimes"),
        ("BUNQ_LOG_LEVEL", "loud"),
        ("BUNQ_REQUIRE_AUTH_FOR_METRICS", "maybe"),
        ("METRICS_AUTH", "maybe"),
        ("BUNQ_MIN_FREE_DISK_MB", "-1"),
        ("RATE_LIMIT_MAX_REQUESTS", "lots"),
        ("QUEUE_IDLE_THRESHOLD_MS", "soon"),
        ("QUEUE_SIZE_THRESHOLD", "-1"),
        ("WORKER_OVERLOAD_THRESHOLD_MS", "1.5"),
        ("MEMORY_WARNING_MB", "1GB"),
        ("STORAGE_WARNING_MB", "-3"),
    ],
)
def test_bad_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} "):
        Settings.from_env({name: value})


def test_serve_reports_a_bad_value_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUEUE_SIZE_THRESHOLD", "many")
    with pytest.raises(SystemExit) as exited:
        main(["serve"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "bunq: QUEUE_SIZE_THRESHOLD must be an integer, got 'many'\n"


def test_a_shard_started_alone_reports_a_bad_value_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUNQ_SHARDS", "abc")
    with pytest.raises(SystemExit) as exited:
        shard_main(["0"])
    assert exited.value.code == "shard: BUNQ_SHARDS must be an integer, got 'abc'"  # printed, exit status 1


def test_a_shard_refuses_files_laid_out_for_another_shard_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prepare(str(tmp_path), slots=256, shards=2)
    monkeypatch.setenv("BUNQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BUNQ_SLOTS", "256")
    monkeypatch.setenv("BUNQ_SHARDS", "3")  # changed, and `bunq prepare` not run again
    with pytest.raises(SystemExit) as exited:
        shard_main(["0"])
    assert exited.value.code == (
        f"shard: {tmp_path} is laid out for 2 shard(s), BUNQ_SHARDS=3: "
        "run `bunq prepare` with the new count before the shards start"
    )
    monkeypatch.setenv("BUNQ_SHARDS", "2")
    monkeypatch.setenv("BUNQ_SLOTS", "512")
    with pytest.raises(SystemExit) as exited:
        shard_main(["0"])
    assert exited.value.code == f"shard: {tmp_path} was created with 256 slots; BUNQ_SLOTS=512 cannot change"
    monkeypatch.setenv("BUNQ_SLOTS", "256")
    with pytest.raises(SystemExit) as exited:
        shard_main(["2"])
    assert exited.value.code == "shard: shard 2 does not exist with BUNQ_SHARDS=2 (shards are 0 to 1)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # nothing written by the refusals
    check_layout(str(tmp_path), 256, 2, 1)  # what prepare laid out is accepted


def test_readme_lists_every_variable() -> None:
    env = Recording()
    Settings.from_env(env)
    section = README.read_text().split("| variable | default | meaning |")[1].split("\n\n")[0]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    assert env.asked - listed == set()
