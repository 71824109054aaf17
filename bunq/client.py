"""The front's side of the shard link: one DEALER socket per shard, calls paired with replies by request id."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

import zmq
import zmq.asyncio

from bunq import wire
from bunq.errors import Unavailable, from_code
from bunq.protocol import Command, Error, Reply
from bunq.routing import shard_of_slot, slot_of, slot_of_id
from bunq.settings import Settings

LONG_POLL_MARGIN_MS = 5_000


class ShardClient:
    """Routes commands to shards and awaits their replies; a reply that does not come in time is a 503."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shards = settings.shards
        self.slots = settings.slots
        self.timeout_s = settings.request_timeout_ms / 1000
        self.ctx = zmq.asyncio.Context()
        self.sockets: list[zmq.asyncio.Socket] = []
        self.pending: dict[int, asyncio.Future[Reply]] = {}
        self.counter = itertools.count(1)
        self.readers: list[asyncio.Task[None]] = []
        self._slot_cache: dict[str, int] = {}

    async def start(self) -> None:
        for endpoint in self.settings.shard_endpoints:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.setsockopt(zmq.RCVHWM, 100_000)
            sock.connect(endpoint)
            self.sockets.append(sock)
            self.readers.append(asyncio.create_task(self._read(sock)))

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        for sock in self.sockets:
            sock.close()
        self.ctx.term()

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        pending = self.pending
        while True:
            frames = await sock.recv_multipart()
            if len(frames) != 2:
                continue
            future = pending.pop(wire.request_number(frames[0]), None)
            if future is not None and not future.done():
                future.set_result(wire.decode_reply(frames[1]))

    # ---- routing --------------------------------------------------------------------------------

    def shard_for_queue(self, queue: str) -> int:
        slot = self._slot_cache.get(queue)
        if slot is None:
            if len(self._slot_cache) > 100_000:
                self._slot_cache.clear()
            slot = self._slot_cache[queue] = slot_of(queue, self.slots)
        return shard_of_slot(slot, self.shards)

    def shard_for_id(self, job_id: str) -> int | None:
        """The shard a bunq-made id points at; None for a client-chosen id (ask every shard)."""
        slot = slot_of_id(job_id)
        if slot is None or slot >= self.slots:
            return None
        return shard_of_slot(slot, self.shards)

    # ---- calls ----------------------------------------------------------------------------------

    async def call(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        """Send one command; raise the shard's error as an exception, or Unavailable on timeout."""
        reply = await self.call_raw(shard, command, extra_wait_ms=extra_wait_ms)
        if type(reply) is Error:
            raise from_code(reply.code, reply.message)
        return reply

    async def call_raw(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        loop = asyncio.get_running_loop()
        number = next(self.counter)
        future: asyncio.Future[Reply] = loop.create_future()
        self.pending[number] = future
        timer = loop.call_later(self.timeout_s + extra_wait_ms / 1000, _expire, future, shard)
        try:
            await self.sockets[shard].send_multipart([wire.request_id(number), wire.encode(command)])
            return await future
        finally:
            timer.cancel()
            self.pending.pop(number, None)

    async def call_queue(self, queue: str, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        return await self.call(self.shard_for_queue(queue), command, extra_wait_ms=extra_wait_ms)

    async def call_all(self, command: Command, shards: Sequence[int] | None = None) -> list[Reply]:
        """The same command to several shards in parallel (raw replies, errors included)."""
        targets = range(self.shards) if shards is None else shards
        return list(await asyncio.gather(*(self.call_raw(s, command) for s in targets)))

    async def call_for_id(self, job_id: str, command: Command, found: Callable[[Reply], bool]) -> Reply:
        """Ask the shard the id points at; when it does not have the job (or the id is a client's), ask the rest.

        Returns the first reply that `found` accepts, else the routed shard's (or the first) reply.
        """
        primary = self.shard_for_id(job_id)
        first: Reply | None = None
        if primary is not None:
            first = await self.call_raw(primary, command)
            if found(first) or self.shards == 1:
                return first
        others = [s for s in range(self.shards) if s != primary]
        replies = await self.call_all(command, others)
        for reply in replies:
            if found(reply):
                return reply
        return first if first is not None else replies[0]


def _expire(future: asyncio.Future[Reply], shard: int) -> None:
    if not future.done():
        future.set_exception(Unavailable(f"Shard {shard} did not answer in time"))


def raise_error(reply: Reply) -> Reply:
    if type(reply) is Error:
        raise from_code(reply.code, reply.message)
    return reply
