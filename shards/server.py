"""A shard process: the ZeroMQ socket loop around one `Engine` (single-threaded, owns its SQLite file)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from types import FrameType

import zmq

from bunq import collector, wire
from bunq.errors import ConfigError
from bunq.protocol import Error, PullJobs, Reply
from bunq.settings import Settings
from shards.engine import Engine, wall_clock_ms
from shards.events import Publisher
from shards.link import ShardLink
from shards.store import Store
from shards.waiters import Respond
from shards.writer import Writer

log = logging.getLogger("bunq.shard")

LARGE_PULL_S = 0.0002  # a pull that took this long (many jobs) is answered before the rest of the turn
DRAIN_BATCH = 2048  # requests handled per wake-up before timers and the flush get a turn
MAX_TURN_S = 0.005  # nor for longer than this, so that a flush falls due at most this late
FLUSH_EARLY_AT = 20_000  # journal entries that trigger a flush before the interval is up
DISK_CHECK_S = 5.0


def store_path(data_dir: str, index: int) -> str:
    return os.path.join(data_dir, f"shard-{index}.db")


class ShardServer:
    def __init__(self, settings: Settings, index: int) -> None:
        self.settings = settings
        self.index = index
        self.running = True
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.setsockopt(zmq.SNDHWM, 100_000)
        for d in settings.ipc_dirs():
            os.makedirs(d, exist_ok=True)
        self.router.bind(settings.shard_endpoints[index])
        self.xpub.bind(settings.shard_event_endpoints[index])
        self.publisher = Publisher(self.xpub, index)
        self.outbox: dict[bytes, list[bytes]] = {}
        store = Store(store_path(settings.data_dir, index), sync_full=settings.sync_full, checkpoint_thread=True)
        self.link = ShardLink(self.ctx, settings.shard_endpoints, index)
        self.engine = Engine(
            store,
            shard=index,
            shards=settings.shards,
            slots=settings.slots,
            events=self.publisher,
            completed_cache=settings.completed_cache,
        )

    def responder(self, identity: bytes, rid: bytes) -> Respond:
        outbox = self.outbox

        def respond(reply: Reply) -> None:
            items = outbox.get(identity)
            if items is None:
                outbox[identity] = [wire.item(rid, reply)]
            else:
                items.append(wire.item(rid, reply))

        return respond

    def send_replies(self) -> None:
        """The turn's events, then one frame per front for every reply produced in this turn of the loop."""
        self.publisher.flush()
        if not self.outbox:
            return
        send = self.router.send_multipart
        for identity, items in self.outbox.items():
            send([identity, b"".join(items)])
        self.outbox.clear()  # cleared in place: parked responders hold this very dict

    def run(self) -> None:
        self.engine.load()
        log.info("shard %d ready: %d live jobs", self.index, len(self.engine.jobs))
        collector.settle()
        self.writer = Writer(self.engine.store.path, sync_full=self.settings.sync_full)
        self.engine.commits.writer = self.engine.store.writer = self.writer
        poller = self._poller()
        wake = self.writer.wake_fd
        link_sockets = set(self.link.sockets.values())
        flush_due: int | None = None
        interval = self.settings.flush_interval_ms
        disk_checked = 0.0
        engine = self.engine
        while self.running:
            events = dict(poller.poll(self._poll_timeout(flush_due)))
            if self.router in events:
                self._drain_requests()
            if self.xpub in events:
                self._drain_subscriptions()
            for sock in link_sockets.intersection(events):
                self.link.drain(sock)
            if wake in events:
                engine.commits.on_written()
            engine.tick()
            if time.monotonic() - disk_checked > DISK_CHECK_S:
                disk_checked = time.monotonic()
                if not self.writer.is_alive():  # never expected: exit, and the supervisor starts a new shard
                    raise RuntimeError("the shard's writer thread is gone")
                engine.disk_full = self.free_disk() < self.settings.min_free_disk_mb * 1024 * 1024
            engine.publish_counts()
            self.send_replies()
            if engine.outgoing:
                outgoing, engine.outgoing = engine.outgoing, []
                self.link.send_all(outgoing)
            pending = engine.journal.pending()
            if pending and flush_due is None:
                flush_due = wall_clock_ms() + interval
            if (
                engine.after_commit
                or pending >= FLUSH_EARLY_AT
                or (flush_due is not None and wall_clock_ms() >= flush_due)
            ):
                engine.flush_soon()
                self.send_replies()  # a durable reply with nothing left to write is answered at once
                flush_due = None
        engine.flush()
        self.send_replies()
        self.writer.stop()
        self._close()

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.xpub, zmq.POLLIN)
        for sock in self.link.sockets.values():
            poller.register(sock, zmq.POLLIN)
        poller.register(self.writer.wake_fd, zmq.POLLIN)
        return poller

    def _close(self) -> None:
        self.engine.store.close()
        self.link.close()
        self.router.close()
        self.xpub.close()
        self.ctx.term()
        log.info("shard %d stopped", self.index)

    def free_disk(self) -> int:
        try:
            return shutil.disk_usage(os.path.abspath(self.settings.data_dir)).free
        except OSError:
            return 0

    def _poll_timeout(self, flush_due: int | None) -> int:
        now = wall_clock_ms()
        due = [t for t in (self.engine.next_timer(), flush_due) if t is not None]
        if not due:
            return 100
        return max(0, min(100, min(due) - now))

    def _drain_requests(self) -> None:
        """Handle what the fronts sent, for `MAX_TURN_S` at most: then timers, the journal's flush and the
        replies get their turn (a turn used to end only after 2048 frames, however long they took; answered
        sooner, bulk pushes into one queue go 1.4x as fast). Replies go out at the end of the turn, but a pull that took
        `LARGE_PULL_S` or more (many jobs) is sent at once, with what is ready before it: a worker waits for
        it to start work, and it must not wait for the acks behind it in the same frame. Small pulls wait
        for the turn's end: sending each at once would cost more than their wait. After a frame, the next is
        looked for with `wire.readable`, not with a read that fails."""
        recv = self.router.recv_multipart
        handle = self.engine.handle
        clock = time.perf_counter
        turn_ends = clock() + MAX_TURN_S
        router = self.router
        for n in range(DRAIN_BATCH):
            if n and not wire.readable(router):
                return
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue
            identity, frame = frames
            for rid, payload in wire.split(frame):
                try:
                    command = wire.decode_command(payload)
                except Exception:
                    log.warning("undecodable command from a front")
                    self.responder(identity, rid)(Error("bad_request", "Malformed command"))
                    continue
                started = clock()
                handle(command, self.responder(identity, rid))
                if type(command) is PullJobs and clock() - started >= LARGE_PULL_S and self.outbox:
                    self.send_replies()
            if clock() >= turn_ends:
                return  # what is left waits for the next turn

    def _drain_subscriptions(self) -> None:
        for _ in range(DRAIN_BATCH):
            try:
                message = self.xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.publisher.on_subscription(message)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        sys.exit("usage: python -m shards INDEX")
    from shards.reshard import check_layout  # reshard imports this module

    index = int(argv[0])
    try:
        settings = Settings.from_env()
        check_layout(settings.data_dir, settings.slots, settings.shards, index)
    except ConfigError as exc:
        sys.exit(f"shard: {exc.message}")  # one line naming the variable or the layout, exit status 1
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s shard %(message)s")
    server = ShardServer(settings, index)
    signal.signal(signal.SIGTERM, server.stop)
    signal.signal(signal.SIGINT, server.stop)
    server.run()
