"""The server commands of `bunq`: `serve` supervises the whole set; `front`, `shard`, `aggregator`, `prepare` run
one part. `bunq.cli.main` hands these commands here before it loads Click or the SDK, so the supervisor and the
processes it starts (`python -m bunq.cli front`, ...) carry none of the operator command line.

The supervisor starts the aggregator, N shards and the front (uvicorn, F workers) as child processes,
restarts any that dies, and on SIGTERM/SIGINT has the aggregator announce `server:shutdown` to the
clients, then stops the front, then the shards (which flush), then the aggregator.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from bunq.errors import ConfigError
from bunq.procinfo import ANNOUNCE_S, FRONT_MANAGER, SHUTDOWN_COMING, die_with_parent
from bunq.settings import Settings

log = logging.getLogger("bunq")

STOP_TIMEOUT_S = 15.0
WATCH_INTERVAL_S = 0.05
RESTART_DELAY_S = 0.5  # before restarting a process that died again soon after a restart (a crash loop)
STEADY_AFTER_S = 5.0
START_ATTEMPTS = 5  # a process that fails this many starts in a row and never ran steadily ends the server


def _child_setup() -> None:
    """In a child, before it runs Python: tied to the supervisor, and deaf to `SHUTDOWN_COMING` until the
    aggregator takes it up (its default action would end a process that has no handler for it yet)."""
    die_with_parent()
    signal.signal(SHUTDOWN_COMING, signal.SIG_IGN)


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.started: dict[str, float] = {}
        self.restarted: set[str] = set()
        self.failed_starts: dict[str, int] = {}  # of processes that have not yet once run steadily
        self.stopping = False
        self.failed: str | None = None  # why the server gave up, if it did

    def spawn(self, name: str, argv: list[str]) -> None:
        if name not in self.commands:
            self.failed_starts[name] = 0
        self.commands[name] = argv
        self.started[name] = time.monotonic()
        self.children[name] = subprocess.Popen(argv, preexec_fn=_child_setup)

    def start(self) -> None:
        py = sys.executable
        self.spawn("aggregator", [py, "-m", "bunq.cli", "aggregator"])
        for i in range(self.settings.shards):
            self.spawn(f"shard-{i}", [py, "-m", "shards", str(i)])
        self.spawn("front", [py, "-m", "bunq.cli", "front"])

    def watch(self) -> None:
        while not self.stopping:
            time.sleep(WATCH_INTERVAL_S)
            for name, proc in list(self.children.items()):
                code = proc.poll()
                if code is not None and not self.stopping:
                    self.restart(name, code)

    def restart(self, name: str, code: int) -> None:
        """At once the first time: requests wait for the process. Again soon after a restart: after a pause."""
        lived = time.monotonic() - self.started[name]
        if name in self.failed_starts and code > 0 and lived < STEADY_AFTER_S:
            self.failed_starts[name] += 1
            if self.failed_starts[name] >= START_ATTEMPTS:
                self.failed = f"{name} failed its first {START_ATTEMPTS} starts (exit {code}); see its errors above"
                self.stopping = True
                return
        elif lived >= STEADY_AFTER_S:
            self.failed_starts.pop(name, None)
        log.warning("%s exited with %s after %.1f s; restarting", name, code, lived)
        if name in self.restarted and lived < STEADY_AFTER_S:
            time.sleep(RESTART_DELAY_S)
        if not self.stopping:
            self.spawn(name, self.commands[name])
            self.restarted.add(name)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        aggregator = self.children.get("aggregator")
        if aggregator is not None and aggregator.poll() is None:
            aggregator.send_signal(SHUTDOWN_COMING)  # server:shutdown, while the fronts have their clients
            time.sleep(ANNOUNCE_S)
        order = [["front"], [n for n in self.children if n.startswith("shard-")], ["aggregator"]]
        for names in order:
            procs = [self.children[n] for n in names if n in self.children]
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for proc in procs:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _cannot_listen(host: str, port: int, reuse_port: bool = False) -> str | None:
    """Why `host:port` cannot be listened on now (the system's words), or None where it can: checked before
    anything starts, so that a port in use ends `bunq serve` with one clear line instead of a restart loop."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return exc.strerror
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and asyncio bind
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def serve(settings: Settings) -> None:
    listens = [("HTTP", settings.http_host, settings.http_port, False)]
    if settings.tcp_port:
        listens.append(("TCP", settings.tcp_host, settings.tcp_port, True))
    for what, host, port, reuse_port in listens:
        why = _cannot_listen(host, port, reuse_port)
        if why is not None:
            sys.exit(f"bunq: cannot listen for {what} on {host}:{port}: {why}")
    # in a process of its own, so the supervisor never holds the storage modules (or their memory)
    prepared = subprocess.run([sys.executable, "-m", "bunq.cli", "prepare"], check=False)
    if prepared.returncode:
        sys.exit(prepared.returncode)
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    supervisor.start()
    log.info(
        "bunq serving http://%s:%d%s (%d shard(s), %d front worker(s), data in %s)",
        settings.http_host,
        settings.http_port,
        f" and bunqueue's TCP protocol on {settings.tcp_host}:{settings.tcp_port}" if settings.tcp_port else "",
        settings.shards,
        settings.fronts,
        os.path.abspath(settings.data_dir),
    )
    try:
        supervisor.watch()
    finally:
        supervisor.shutdown()
        log.info("bunq stopped")
    if supervisor.failed:
        sys.exit(f"bunq: {supervisor.failed}")


def front(settings: Settings) -> None:
    import uvicorn

    from bunq.httpconn import http_protocol

    if settings.fronts > 1:
        os.environ[FRONT_MANAGER] = str(os.getpid())  # the workers tie themselves to this process
    uvicorn.run(
        "bunq.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.fronts,
        loop="uvloop",
        http=http_protocol(settings),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        server_header=False,  # as the reference: no `server` header naming the software
    )


def main(argv: list[str] | None = None) -> None:
    """Run one server command (`argv` as after `bunq`, e.g. `["shard", "0"]`)."""
    parser = argparse.ArgumentParser(prog="bunq", description="bunq job queue server")
    parser.add_argument(
        "command",
        choices=["serve", "front", "shard", "aggregator", "prepare"],
        help="serve: everything on this host; the others run one process type (see the Procfile)",
    )
    parser.add_argument("index", nargs="?", type=int, help="shard index (for `shard`)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        parser.exit(2, f"bunq: {exc.message}\n")  # before any child starts: one line naming the variable
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if args.command == "serve":
        serve(settings)
    elif args.command == "front":
        front(settings)
    elif args.command == "aggregator":
        from bunq.aggregator.server import main as aggregator_main

        aggregator_main()
    elif args.command == "prepare":
        from shards.reshard import prepare

        prepare(settings.data_dir, settings.slots, settings.shards)
    else:
        if args.index is None:
            parser.error("shard needs an index")
        from shards.server import main as shard_main

        shard_main([str(args.index)])
