"""Shard → shard calls (dependency watches and resolutions): DEALER sockets to the other shards.

The engine queues `(shard, command, on_reply)` in `outgoing`; the server loop hands them here after
each turn and feeds replies back from the poller. Calls are fire-and-callback: a shard never blocks
on another, and callers that need delivery (the dependency outbox) retry on their own timers.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable

import zmq

from bunq import wire
from bunq.protocol import Command, Reply

FORGET_AFTER_S = 60.0


class ShardLink:
    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoints: tuple[str, ...], me: int) -> None:
        self.sockets: dict[int, zmq.Socket[bytes]] = {}
        for shard, endpoint in enumerate(endpoints):
            if shard == me:
                continue
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.connect(endpoint)
            self.sockets[shard] = sock
        self.pending: dict[int, tuple[Callable[[Reply], None], float]] = {}
        self.counter = itertools.count(1)
        self.last_sweep = time.monotonic()

    def send_all(self, outgoing: list[tuple[int, Command, Callable[[Reply], None]]]) -> None:
        frames: dict[int, list[bytes]] = {}
        now = time.monotonic()
        for shard, command, on_reply in outgoing:
            if shard not in self.sockets:
                continue
            number = next(self.counter)
            self.pending[number] = (on_reply, now)
            frames.setdefault(shard, []).append(wire.request_item(number, command))
        for shard, items in frames.items():
            # a shard that is down or swamped drops them; the caller's retry timer sends again
            with contextlib.suppress(zmq.Again):
                self.sockets[shard].send(b"".join(items), zmq.NOBLOCK)
        if now - self.last_sweep > FORGET_AFTER_S:
            self.last_sweep = now
            self.pending = {n: e for n, e in self.pending.items() if now - e[1] < FORGET_AFTER_S}

    def drain(self, sock: zmq.Socket[bytes]) -> None:
        for number, reply in wire.received_replies(sock):
            entry = self.pending.pop(number, None)
            if entry is not None:
                entry[0](reply)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
