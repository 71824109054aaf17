"""The front's event hub: one SUB socket on the aggregator, fanned out to local SSE and WebSocket clients.

The hub subscribes upstream only to the topics its clients need, and only while it has clients, so
shards build no events when nobody listens. Subscriptions travel upstream asynchronously; `sync()` is
the barrier that tells a client "from now on you receive these events".
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from bunq import wire
from bunq.catalogue import INTERNAL, SYNC, SYNC_AGGREGATOR

log = logging.getLogger("bunq.front")

CLIENT_BUFFER = 10_000  # events a client may fall behind by before it is dropped (a bulk push's burst fits)
CLIENT_BUFFER_BYTES = 64 * 2**20  # and their bytes: completions carrying large results fill memory first
READ_BATCH = 1000  # events read before other tasks get a turn
SYNC_TIMEOUT_S = 2.0  # a dead shard delays a subscriber this long, then it is answered anyway

_SYNC = SYNC.encode()
_INTERNAL = tuple(topic.encode() for topic in INTERNAL)

LEGACY_NAMES = {
    "job:active": "pulled",
    "queue:paused": "paused",
    "queue:resumed": "resumed",
    "queue:drained": "drained",
}

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class Event:
    """One event as received: its envelope JSON is sent as is to pub/sub clients, and its legacy form
    (`{eventType, queue, jobId, ...}`) is encoded once, on first need, for every legacy client."""

    __slots__ = ("name", "envelope", "raw", "_legacy")

    def __init__(self, name: str, envelope: dict[str, Any], raw: bytes) -> None:
        self.name = name
        self.envelope = envelope
        self.raw = raw
        self._legacy: bytes | None = None

    def legacy_fields(self) -> dict[str, Any]:
        """`{eventType, queue, jobId, ..., timestamp}`, as the reference broadcasts it to legacy WebSocket
        and SSE clients and to bunqueue's `QueueEvents` over TCP: a pull is `pulled`, a completion's result
        is also its `data`."""
        data = self.envelope.get("data")
        fields: dict[str, Any] = dict(data) if isinstance(data, dict) else {}
        name = self.name
        kind = LEGACY_NAMES.get(name) or name.split(":", 1)[-1]
        if name == "job:completed" and "data" not in fields:
            fields["data"] = fields.get("result")
        return {"eventType": kind, **fields, "timestamp": self.envelope.get("ts")}

    def legacy(self) -> bytes:
        if self._legacy is None:
            self._legacy = _encode(self.legacy_fields())
        return self._legacy


class Inbox(asyncio.Queue["Event | None"]):
    """A client's bounded buffer, which also counts the bytes of the events in it (as received: the
    envelope's size), through the hooks every put and get of a queue goes through."""

    def __init__(self) -> None:
        super().__init__(CLIENT_BUFFER)
        self.bytes = 0

    def _put(self, item: Event | None) -> None:
        super()._put(item)
        if item is not None:
            self.bytes += len(item.raw)

    def _get(self) -> Event | None:
        item = super()._get()
        if item is not None:
            self.bytes -= len(item.raw)
        return item


@dataclass(eq=False)
class Listener:
    """One SSE or WebSocket client: the topic prefixes it wants, an optional queue filter (applied to
    events that name a queue), and its bounded buffer."""

    topics: tuple[str, ...]
    queue: str | None = None
    legacy: bool = True
    inbox: Inbox = field(default_factory=Inbox)
    dropped: bool = False

    def frame(self, event: Event) -> bytes | None:
        """What to send this client for a buffered event, as it is now: the legacy form, the envelope, or
        nothing. An event buffered before a Subscribe narrowed the topics (a legacy client's job events)
        is not sent as the envelope of an event the client did not subscribe to."""
        if self.legacy:
            return event.legacy()
        return event.raw if self.wants(event.name) else None

    def wants(self, name: str) -> bool:
        return any(name.startswith(t) for t in self.topics)


class Barrier:
    """One `sync()` in flight: the sources (the aggregator, each shard) that have not answered yet."""

    __slots__ = ("missing", "done")

    def __init__(self, sources: set[int]) -> None:
        self.missing = sources
        self.done = asyncio.Event()


class EventHub:
    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, shards: int) -> None:
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(endpoint)
        self.shards = shards
        self.listeners: set[Listener] = set()
        self.topics: dict[str, int] = {}
        self.barriers: dict[bytes, Barrier] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fd = 0

    def start(self) -> None:
        """Read from the loop's reader callback on the socket's descriptor, as the shard link does (an awaited
        poll costs a future and a callback chain per wake-up). The descriptor is edge-triggered: it signals
        only once a read has found the socket empty, so a read is also due after anything that may have
        consumed the edge (a subscription change) and whenever a batch stops short."""
        self.loop = asyncio.get_running_loop()
        self.plain: zmq.Socket[bytes] = zmq.Socket.shadow(self.sub.underlying)  # its reads skip the asyncio layer
        self.fd = int(self.sub.getsockopt(zmq.FD))
        self.loop.add_reader(self.fd, self._read)
        self._read_soon()

    def close(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        self.loop = None
        self.sub.close()

    def _read_soon(self) -> None:
        if self.loop is not None:
            self.loop.call_soon(self._read)

    def add(self, listener: Listener) -> None:
        self.listeners.add(listener)
        self._hold(listener.topics)

    def retopic(self, listener: Listener, topics: tuple[str, ...]) -> None:
        """Change what a listener wants (a WebSocket client's Subscribe or Unsubscribe). New topics are
        taken before old ones are let go, so a topic it keeps never leaves the upstream subscription."""
        old = listener.topics if listener in self.listeners else ()
        listener.topics = topics
        if topics:
            self.listeners.add(listener)
        else:
            self.listeners.discard(listener)
        self._hold(topics)
        self._release(old)

    def remove(self, listener: Listener) -> None:
        if listener not in self.listeners:
            return
        self.listeners.discard(listener)
        self._release(listener.topics)

    def _hold(self, topics: tuple[str, ...]) -> None:
        for topic in topics:
            self.topics[topic] = self.topics.get(topic, 0) + 1
            if self.topics[topic] == 1:
                self.sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
                self._read_soon()

    def _release(self, topics: tuple[str, ...]) -> None:
        for topic in topics:
            self.topics[topic] -= 1
            if self.topics[topic] == 0:
                del self.topics[topic]
                self.sub.setsockopt(zmq.UNSUBSCRIBE, topic.encode())
                self._read_soon()

    async def sync(self) -> None:
        """Return once every subscription set so far is in force at the aggregator and at every shard:
        events they publish from then on reach this hub. After `SYNC_TIMEOUT_S` it returns anyway.

        ZeroMQ keeps one pipe's subscriptions in order, at each hop. A unique `sync:` topic subscribed
        after them reaches the aggregator's XPUB and each shard after them; each answers it at once on
        that topic, and the answers travel the pipes its later events will take.
        """
        topic = _SYNC + secrets.token_hex(16).encode()
        barrier = self.barriers[topic] = Barrier({SYNC_AGGREGATOR, *range(self.shards)})
        self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._read_soon()
        try:
            await asyncio.wait_for(barrier.done.wait(), SYNC_TIMEOUT_S)
        except TimeoutError:
            log.warning("subscription barrier: no answer from %s in %.1f s", sorted(barrier.missing), SYNC_TIMEOUT_S)
        finally:
            del self.barriers[topic]
            if not self.sub.closed:  # a client still waiting when the front shuts down
                self.sub.setsockopt(zmq.UNSUBSCRIBE, topic)
                self._read_soon()

    def _synced(self, topic: bytes, payload: bytes) -> None:
        """A barrier's answer; those of other fronts' barriers (seen by a `*` subscription) are ignored."""
        barrier = self.barriers.get(topic)
        if barrier is None:
            return
        try:
            barrier.missing.discard(_decode(payload)["data"]["shard"])
        except (msgspec.DecodeError, KeyError, TypeError):
            log.warning("malformed barrier answer on %r", topic)
            return
        if not barrier.missing:
            barrier.done.set()

    def _read(self) -> None:
        """Every event that has arrived, up to `READ_BATCH` (then the rest after other callbacks had a turn)."""
        if self.loop is None or self.sub.closed:
            return
        for n in range(READ_BATCH):
            if n and not wire.readable(self.plain):
                return
            try:
                frames = self.plain.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                log.warning("an event message of %d frames, not [name, envelopes]", len(frames))
                continue
            for envelope in wire.envelopes(frames[1]):  # a shard's run of events of one name
                self._receive(frames[0], envelope)
        self._read_soon()

    def _receive(self, topic: bytes, payload: bytes) -> None:
        if topic.startswith(_INTERNAL):
            if topic.startswith(_SYNC):
                self._synced(topic, payload)
            return  # the shards' word to the aggregator (a `*` subscription reaches it too)
        try:
            envelope = _decode(payload)
        except msgspec.DecodeError:
            log.warning("undecodable event on %r", topic)
            return
        self.dispatch(Event(topic.decode(), envelope, payload))

    def dispatch(self, event: Event) -> None:
        name = event.name
        data = event.envelope.get("data")
        queue = data.get("queue") if isinstance(data, dict) else None
        for listener in list(self.listeners):
            if listener.queue is not None and queue is not None and queue != listener.queue:
                continue
            if not listener.wants(name):
                continue
            try:
                listener.inbox.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(listener)
                continue
            if listener.inbox.bytes > CLIENT_BUFFER_BYTES:
                self._drop(listener)

    def _drop(self, listener: Listener) -> None:
        """A client that stopped reading is cut off rather than slowing everyone else."""
        listener.dropped = True
        self.remove(listener)
        while not listener.inbox.empty():
            listener.inbox.get_nowait()
        listener.inbox.put_nowait(None)
