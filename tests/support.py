"""Test support: a fake clock, an in-process stand-in for the shards, and a real `bunq serve` process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from bunq.client import ShardClient
from bunq.errors import Unavailable
from bunq.protocol import Command, Reply
from bunq.settings import Settings
from shards.engine import Engine
from shards.store import Store

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """Wall-clock milliseconds that only move when a test says so."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def make_engine(path: Path, clock: Callable[[], int] | None = None, **kwargs: object) -> Engine:
    engine = Engine(Store(str(path)), clock=clock or FakeClock(), **kwargs)  # type: ignore[arg-type]
    engine.load()
    return engine


class LocalShardClient(ShardClient):
    """The front's shard client with the engines called in-process (no sockets, storage in a temp dir)."""

    def __init__(self, settings: Settings, engines: list[Engine]) -> None:
        super().__init__(settings)
        self.engines = engines
        self.ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        for engine in self.engines:
            engine.flush()
        self.ctx.term()

    async def _tick(self) -> None:
        while True:
            for engine in self.engines:
                engine.tick()
                if engine.journal.pending() or engine.after_commit:
                    engine.flush()
            self.deliver()
            await asyncio.sleep(0.002)

    def deliver(self) -> None:
        """Hand shard-to-shard messages to their engines, as the server loop's link does."""
        while any(engine.outgoing for engine in self.engines):
            for engine in self.engines:
                outgoing, engine.outgoing = engine.outgoing, []
                for shard, command, on_reply in outgoing:
                    self.engines[shard].handle(command, on_reply)

    async def call_raw(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def respond(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        if shard >= len(self.engines):
            raise Unavailable("The aggregator is not part of the in-process stand-in")
        engine = self.engines[shard]
        engine.handle(command, respond)
        self.deliver()
        if engine.after_commit:
            engine.flush()
        try:
            return await asyncio.wait_for(future, self.timeout_s + extra_wait_ms / 1000)
        except TimeoutError:
            raise Unavailable(f"Shard {shard} did not answer in time") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BunqServer:
    """`bunq serve` started as a user would, on a free port, with its data in `data_dir`."""

    def __init__(self, data_dir: Path, shards: int = 2, fronts: int = 1, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.run_dir = tempfile.mkdtemp(prefix="bq")
        self.env = {
            **os.environ,
            "HTTP_PORT": str(self.port),
            "HTTP_HOST": "127.0.0.1",
            "BUNQ_SHARDS": str(shards),
            "BUNQ_FRONTS": str(fronts),
            "BUNQ_DATA_DIR": str(data_dir),
            "BUNQ_RUN_DIR": self.run_dir,
            "BUNQ_LOG_LEVEL": "warning",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"bunq-{self.port}.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> BunqServer:
        self.env.update(env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bunq.cli", "serve"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"bunq exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"bunq not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            code = -9
        self.proc = None
        return code

    def children(self) -> dict[str, int]:
        """Child process name (front, shard-N, aggregator) → pid, read from /proc."""
        assert self.proc is not None
        found: dict[str, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != self.proc.pid:
                continue
            args = [a.decode() for a in cmdline if a]
            if not args:
                continue  # a zombie awaiting its restart
            if "shards" in args:
                found[f"shard-{args[-1]}"] = int(entry)
            elif args[-1] in ("front", "aggregator"):
                found[args[-1]] = int(entry)
        return found

    def kill_all(self) -> None:
        if self.proc is None:
            return
        for pid in self.children().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def running(data_dir: Path, **kwargs: object) -> Iterator[BunqServer]:
    server = BunqServer(data_dir, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
