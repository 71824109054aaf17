"""The front's link to the shards and the aggregator: `Shards`, the seam every route calls through, and
`ShardClient`, its ZeroMQ implementation (the tests add an in-process one).

`Shards` routes (a queue name or a job id to its shard) and builds the front's calls (typed, to every
shard, per id) on one primitive, `call_raw`, that an implementation supplies. The aggregator is
addressed as shard number `shards`, one past the last.

`ShardClient` keeps one DEALER socket per shard. The sockets are plain (not zmq.asyncio): calls made in
one turn of the event loop leave together in one frame, sent non-blocking from a `call_soon` callback,
and replies are drained from the loop's reader callback on each socket's file descriptor. That
descriptor is edge-triggered, so every send is followed by a drain too.

A socket monitor per shard reports when its connection closes (the process died or restarted): the
calls already sent on it are answered 503 at once instead of at their deadline, since their replies
can no longer come. Calls made while the shard is down wait in the socket's queue, which ZeroMQ hands
to the restarted process as soon as it has bound its address.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, overload

import zmq
from zmq.utils.monitor import recv_monitor_message

from bunq import wire
from bunq.errors import Unavailable, from_code
from bunq.protocol import AckOutcome, Command, Error, Reply
from bunq.routing import shard_of_slot, slot_of, slot_of_id
from bunq.settings import Settings

SWEEP_INTERVAL_S = 0.1
# what a shard answers, in a batch outcome, for an id it has no job of
NOT_FOUND = ("Job not found", "Job not found or not active")

R = TypeVar("R", bound=Reply)


class Shards(abc.ABC):
    """Routes commands to shards and awaits their replies; a reply that does not come in time is a 503."""

    def __init__(self, settings: Settings, *, with_aggregator: bool = False) -> None:
        self.settings = settings
        self.with_aggregator = with_aggregator  # else aggregator calls are Unavailable (the aggregator's own link)
        self.shards = settings.shards
        self.slots = settings.slots
        self.timeout_s = settings.request_timeout_ms / 1000
        self._slot_cache: dict[str, int] = {}

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def call_raw(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        """Send one command to `shard` (the aggregator is `self.shards`); its reply as it came, errors included.
        Unavailable when no reply comes within the request timeout plus `extra_wait_ms`."""

    # ---- routing --------------------------------------------------------------------------------

    def slot_for_queue(self, queue: str) -> int:
        slot = self._slot_cache.get(queue)
        if slot is None:
            if len(self._slot_cache) > 100_000:
                self._slot_cache.clear()
            slot = self._slot_cache[queue] = slot_of(queue, self.slots)
        return slot

    def shard_for_queue(self, queue: str) -> int:
        return shard_of_slot(self.slot_for_queue(queue), self.shards)

    def shard_for_id(self, job_id: str) -> int | None:
        """The shard a bunq-made id points at; None for a client-chosen id (ask every shard)."""
        slot = slot_of_id(job_id)
        if slot is None or slot >= self.slots:
            return None
        return shard_of_slot(slot, self.shards)

    # ---- calls ----------------------------------------------------------------------------------

    @overload
    async def call(self, shard: int, command: Command, kind: type[R], *, extra_wait_ms: int = 0) -> R: ...
    @overload
    async def call(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply: ...
    async def call(self, shard: int, command: Command, kind: type[Reply] = Reply, *, extra_wait_ms: int = 0) -> Reply:
        """Send one command; its reply as `kind`, the shard's error raised as an exception, Unavailable on timeout."""
        return expect(await self.call_raw(shard, command, extra_wait_ms=extra_wait_ms), kind)

    @overload
    async def call_aggregator(self, command: Command, kind: type[R]) -> R: ...
    @overload
    async def call_aggregator(self, command: Command) -> Reply: ...
    async def call_aggregator(self, command: Command, kind: type[Reply] = Reply) -> Reply:
        """A registry command (crons, webhooks, workers) to the aggregator; its errors are raised."""
        return await self.call(self.shards, command, kind)

    @overload
    def call_queue(self, queue: str, command: Command, kind: type[R], *, extra_wait_ms: int = 0) -> Awaitable[R]: ...
    @overload
    def call_queue(self, queue: str, command: Command, *, extra_wait_ms: int = 0) -> Awaitable[Reply]: ...
    def call_queue(
        self, queue: str, command: Command, kind: type[Reply] = Reply, *, extra_wait_ms: int = 0
    ) -> Awaitable[Reply]:
        """`call` on the queue's shard (its coroutine, not one more around it: this is every push's path)."""
        return self.call(self.shard_for_queue(queue), command, kind, extra_wait_ms=extra_wait_ms)

    async def call_all(
        self, command: Command, shards: Sequence[int] | None = None, *, extra_wait_ms: int = 0
    ) -> list[Reply]:
        """The same command to several shards in parallel (raw replies, errors included)."""
        targets = range(self.shards) if shards is None else shards
        calls = (self.call_raw(s, command, extra_wait_ms=extra_wait_ms) for s in targets)
        return list(await asyncio.gather(*calls))

    def by_shard(self, ids: list[str]) -> dict[int, list[int]]:
        """Positions of `ids` grouped by the shard each lives on (a client-chosen id: every shard)."""
        groups: dict[int, list[int]] = {}
        for i, job_id in enumerate(ids):
            shard = self.shard_for_id(job_id)
            for s in range(self.shards) if shard is None else (shard,):
                groups.setdefault(s, []).append(i)
        return groups

    async def per_id(self, ids: list[str], command: Callable[[list[int]], Command]) -> tuple[set[str], dict[str, str]]:
        """Run a per-id batch command (its reply an `AckOutcome`) on each id's shard, client-chosen ids on
        every shard; `command` builds it from the positions of that shard's ids. Returns the ids that
        succeeded, and why each other one did not.

        An id that reads as bunq's (a UUID v7 whose slot field names a slot) may still be a client's: a UUID v7
        of its own making, as bunqueue's FlowProducer plans its jobs' ids. Where the shard it points at has no
        such job, the other shards are asked too, as `call_for_id` does for one id."""
        done, failed = await self._per_id_round(ids, self.by_shard(ids), command)
        if self.shards > 1:
            again: dict[int, list[int]] = {}
            for i, job_id in enumerate(ids):
                routed = self.shard_for_id(job_id)
                if routed is not None and failed.get(job_id) in NOT_FOUND:
                    for s in range(self.shards):
                        if s != routed:
                            again.setdefault(s, []).append(i)
            if again:
                found, _ = await self._per_id_round(ids, again, command)
                done |= found
        return done, {k: m for k, m in failed.items() if k not in done}

    async def _per_id_round(
        self, ids: list[str], groups: dict[int, list[int]], command: Callable[[list[int]], Command]
    ) -> tuple[set[str], dict[str, str]]:
        replies = await asyncio.gather(*(self.call_raw(shard, command(idx)) for shard, idx in groups.items()))
        done: set[str] = set()
        failed: dict[str, str] = {}
        for idx, reply in zip(groups.values(), replies, strict=True):
            outcome = expect(reply, AckOutcome)
            for i in idx:
                if ids[i] in outcome.failed:
                    failed.setdefault(ids[i], outcome.failed[ids[i]])
                else:
                    done.add(ids[i])
        return done, {k: m for k, m in failed.items() if k not in done}

    @overload
    async def call_for_id(self, job_id: str, command: Command, found: Callable[[Reply], bool], kind: type[R]) -> R: ...
    @overload
    async def call_for_id(self, job_id: str, command: Command, found: Callable[[Reply], bool]) -> Reply: ...
    async def call_for_id(
        self, job_id: str, command: Command, found: Callable[[Reply], bool], kind: type[Reply] | None = None
    ) -> Reply:
        """Ask the shard the id points at; when it does not have the job (or the id is a client's), ask the rest.

        The first reply that `found` accepts, else the first that is not "Job not found" (so a shard that has
        the job in the wrong state speaks for it), else the routed shard's; with `kind`, that reply as `kind`
        (its error raised), without it the reply as it came.
        """
        primary = self.shard_for_id(job_id)
        first: Reply | None = None
        if primary is not None:
            first = await self.call_raw(primary, command)
            if found(first) or self.shards == 1:
                return first if kind is None else expect(first, kind)
        others = [s for s in range(self.shards) if s != primary]
        replies = await self.call_all(command, others)
        reply = next((r for r in replies if found(r)), None)
        if reply is None:
            answers = replies if first is None else [first, *replies]
            reply = next((r for r in answers if not not_found(r)), answers[0])
        return reply if kind is None else expect(reply, kind)


class ShardClient(Shards):
    """`Shards` over ZeroMQ: one DEALER socket per shard process (and the aggregator's, when asked for)."""

    def __init__(self, settings: Settings, *, with_aggregator: bool = False) -> None:
        super().__init__(settings, with_aggregator=with_aggregator)
        self.ctx = zmq.Context()
        self.sockets: list[zmq.Socket[bytes]] = []
        self.monitors: list[zmq.Socket[bytes]] = []
        self.pending: dict[int, tuple[asyncio.Future[Reply], float, int]] = {}
        self.counter = itertools.count(1)
        self.sweeper: asyncio.Task[None] | None = None
        self.outbox: list[list[tuple[int, bytes]]] = [[] for _ in range(self.shards + 1)]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        endpoints = list(self.settings.shard_endpoints)
        if self.with_aggregator:
            endpoints.append(self.settings.aggregator_endpoint)
        for shard, endpoint in enumerate(endpoints):
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.setsockopt(zmq.RCVHWM, 100_000)
            monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            monitor.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            self.sockets.append(sock)
            self.monitors.append(monitor)
            loop.add_reader(int(sock.getsockopt(zmq.FD)), self._drain, shard)
            loop.add_reader(int(monitor.getsockopt(zmq.FD)), self._watch, shard)
            self._watch(shard)  # its descriptor signals new events only once a read has found it empty
        self.sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        loop = asyncio.get_running_loop()
        for sock, monitor in zip(self.sockets, self.monitors, strict=True):
            loop.remove_reader(int(monitor.getsockopt(zmq.FD)))
            loop.remove_reader(int(sock.getsockopt(zmq.FD)))
            sock.disable_monitor()
            monitor.close()
            sock.close()
        self.ctx.term()

    def _drain(self, shard: int) -> None:
        pending = self.pending
        for number, reply in wire.received_replies(self.sockets[shard]):
            entry = pending.pop(number, None)
            if entry is not None and not entry[0].done():
                entry[0].set_result(reply)

    def _send(self, shard: int) -> None:
        items, self.outbox[shard] = self.outbox[shard], []
        try:
            self.sockets[shard].send(b"".join(item for _, item in items), zmq.NOBLOCK)
        except zmq.Again:
            for number, _ in items:
                entry = self.pending.pop(number, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_exception(Unavailable(f"{self._name(shard)} is overloaded"))
        if wire.readable(self.sockets[shard]):  # a send can take the descriptor's signal of a reply
            self._drain(shard)

    def _watch(self, shard: int) -> None:
        """Read the shard's monitor (drained fully: its descriptor is edge-triggered too)."""
        closed = False
        while True:
            try:
                event = recv_monitor_message(self.monitors[shard], zmq.NOBLOCK)
            except zmq.Again:
                break
            closed = closed or event["event"] == zmq.EVENT_DISCONNECTED
        if closed:
            self._drain(shard)  # replies that arrived before the close are real answers
            self._fail_sent(shard)

    def _fail_sent(self, shard: int) -> None:
        """The connection to `shard` closed: a call sent before may have run, may be lost, or may still reach the
        restarted shard from ZeroMQ's queue, so its outcome is unknown and it is a 503 now (never retried: a push
        is not idempotent). Calls still in the outbox have not left; they go to the restarted shard."""
        unsent = {number for number, _ in self.outbox[shard]}
        lost = [n for n, (_, _, s) in self.pending.items() if s == shard and n not in unsent]
        message = f"{self._name(shard)} went down; the outcome of this request is unknown"
        for number in lost:
            future = self.pending.pop(number)[0]
            if not future.done():
                future.set_exception(Unavailable(message))

    async def _sweep(self) -> None:
        """Fail the calls whose shard did not answer by their deadline (one timer for all calls)."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            now = asyncio.get_running_loop().time()
            expired = [n for n, (_, deadline, _) in self.pending.items() if deadline <= now]
            for number in expired:
                future, _, shard = self.pending.pop(number)
                if not future.done():
                    future.set_exception(Unavailable(f"{self._name(shard)} did not answer in time"))

    def _name(self, shard: int) -> str:
        return "The aggregator" if shard == self.shards else f"Shard {shard}"

    async def call_raw(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        number = next(self.counter)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        deadline = loop.time() + self.timeout_s + extra_wait_ms / 1000
        self.pending[number] = (future, deadline, shard)
        outbox = self.outbox[shard]
        if not outbox:
            loop.call_soon(self._send, shard)
        outbox.append((number, wire.request_item(number, command)))
        try:
            return await future
        finally:
            self.pending.pop(number, None)


def not_found(reply: Reply) -> bool:
    """Whether a shard answered that it has no such job."""
    return type(reply) is Error and reply.code == "not_found"


def raise_error(reply: Reply) -> Reply:
    if type(reply) is Error:
        raise from_code(reply.code, reply.message)
    return reply


def expect(reply: Reply, kind: type[R]) -> R:
    """`reply` as the type the caller expects: a shard's `Error` raised as its exception, any other type a bug."""
    if type(reply) is Error:
        raise from_code(reply.code, reply.message)
    if isinstance(reply, kind):
        return reply
    raise TypeError(f"{type(reply).__name__} reply where {kind.__name__} was expected")
