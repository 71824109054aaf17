"""The front's event hub: one SUB socket on the aggregator, fanned out to local SSE clients.

The hub subscribes upstream only to the topics its clients need, and only while it has clients, so
shards build no events when nobody listens.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import zmq
import zmq.asyncio

log = logging.getLogger("bunq.front")

CLIENT_BUFFER = 1000  # events a client may fall behind by before it is dropped

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

    def legacy(self) -> bytes:
        if self._legacy is None:
            kind = self.name.split(":", 1)[1] if self.name.startswith("job:") else self.name
            data = self.envelope.get("data")
            fields = data if isinstance(data, dict) else {}
            self._legacy = _encode({"eventType": kind, **fields, "timestamp": self.envelope.get("ts")})
        return self._legacy


@dataclass(eq=False)
class Listener:
    """One SSE or WebSocket client: the topic prefixes it wants, an optional queue filter (applied to
    events that name a queue), and its bounded buffer."""

    topics: tuple[str, ...]
    queue: str | None = None
    legacy: bool = True
    inbox: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_BUFFER))
    dropped: bool = False


class EventHub:
    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str) -> None:
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(endpoint)
        self.listeners: set[Listener] = set()
        self.topics: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.sub.close()

    def add(self, listener: Listener) -> None:
        self.listeners.add(listener)
        for topic in listener.topics:
            self.topics[topic] = self.topics.get(topic, 0) + 1
            if self.topics[topic] == 1:
                self.sub.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def retopic(self, listener: Listener, topics: tuple[str, ...]) -> None:
        """Change what a listener wants (a WebSocket client's Subscribe or Unsubscribe)."""
        self.remove(listener)
        listener.topics = topics
        if topics:
            self.add(listener)

    def remove(self, listener: Listener) -> None:
        if listener not in self.listeners:
            return
        self.listeners.discard(listener)
        for topic in listener.topics:
            self.topics[topic] -= 1
            if self.topics[topic] == 0:
                del self.topics[topic]
                self.sub.setsockopt(zmq.UNSUBSCRIBE, topic.encode())

    async def _read(self) -> None:
        while True:
            topic, payload = await self.sub.recv_multipart()
            try:
                envelope = _decode(payload)
            except msgspec.DecodeError:
                log.warning("undecodable event on %r", topic)
                continue
            self.dispatch(Event(topic.decode(), envelope, payload))

    def dispatch(self, event: Event) -> None:
        name = event.name
        data = event.envelope.get("data")
        queue = data.get("queue") if isinstance(data, dict) else None
        for listener in list(self.listeners):
            if listener.queue is not None and queue is not None and queue != listener.queue:
                continue
            if not any(name.startswith(t) for t in listener.topics):
                continue
            try:
                listener.inbox.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(listener)

    def _drop(self, listener: Listener) -> None:
        """A client that stopped reading is cut off rather than slowing everyone else."""
        listener.dropped = True
        self.remove(listener)
        while not listener.inbox.empty():
            listener.inbox.get_nowait()
        listener.inbox.put_nowait(None)
