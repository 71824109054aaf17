"""`bunq serve` started as a user would, on a free port, and waiting on it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out for bind(0) is also one it hands to the
# next outgoing connection, which then holds it when the server binds (a CI run met that).
PORTS = range(20000, 32000)


def free_port() -> int:
    """A port nothing listens on now, outside the range the kernel picks outgoing connections' ports from."""
    while True:
        port = random.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class BunqServer:
    """`bunq serve` started as a user would, on a free port, with its data in `data_dir`."""

    def __init__(self, data_dir: Path, shards: int = 2, fronts: int = 1, **env: str) -> None:
        self.data_dir = data_dir
        self.run_dir = tempfile.mkdtemp(prefix="bq")
        self.env = {
            **os.environ,
            "HTTP_HOST": "127.0.0.1",
            "BUNQ_SHARDS": str(shards),
            "BUNQ_FRONTS": str(fronts),
            "BUNQ_DATA_DIR": str(data_dir),
            "BUNQ_RUN_DIR": self.run_dir,
            "BUNQ_LOG_LEVEL": "warning",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.pick_ports()
        self.log_path = data_dir.parent / f"bunq-{self.port}.log"

    def pick_ports(self) -> None:
        self.port = free_port()
        self.tcp_port = free_port()  # bunqueue's TCP protocol; never the default 6789 that parallel runs would share
        self.env.update(HTTP_PORT=str(self.port), TCP_PORT=str(self.tcp_port))
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, **env: str) -> BunqServer:
        """Start and wait until ready. Where another process took a port between picking and binding (bunq
        refuses to start then), on other ports; on any other failure, nothing is left running."""
        self.env.update(env)
        for attempt in range(3):
            with open(self.log_path, "ab") as log:
                offset = log.tell()
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "bunq.cli", "serve"],
                    env=self.env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                self.wait_ready()
                return self
            except RuntimeError:
                self.kill_all()
                self.proc = None
                taken = "cannot listen" in self.log_path.read_text(errors="replace")[offset:]
                if not taken or attempt == 2:
                    raise
                self.pick_ports()
        raise AssertionError("unreachable")

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


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll `predicate` (an HTTP error counts as not yet) until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
