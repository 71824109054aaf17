"""The shard's queue registry: its queues by name, their slots, and their persisted settings.

Queues are implicit: one comes into memory with the first push or parked pull, is listed (`known`) from
its first push or setting until obliterated, and a queue that was never known leaves again once nothing
refers to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from bunq.catalogue import EventName
from bunq.routing import slot_of
from shards.journal import Journal
from shards.queues import QueueSettings, QueueState
from shards.store import Store

SLOT_CACHE = 100_000

_encode = msgspec.msgpack.Encoder().encode
_decode_settings = msgspec.msgpack.Decoder(QueueSettings).decode


class QueueRegistry:
    def __init__(
        self, journal: Journal, store: Store, slots: int, emit_data: Callable[[EventName, dict[str, Any]], None]
    ) -> None:
        self.journal = journal
        self.store = store
        self.slots = slots
        self.emit_data = emit_data
        self._queues: dict[str, QueueState] = {}
        self.queues: Mapping[str, QueueState] = self._queues  # read by other parts, written here only
        self._slot_cache: dict[str, int] = {}

    def slot(self, queue: str) -> int:
        slot = self._slot_cache.get(queue)
        if slot is None:
            if len(self._slot_cache) > SLOT_CACHE:
                self._slot_cache.clear()
            slot = self._slot_cache[queue] = slot_of(queue, self.slots)
        return slot

    def queue(self, name: str) -> QueueState:
        """The queue `name`, brought into memory if it is not there yet."""
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = QueueState(name)
        return q

    def current(self, q: QueueState) -> bool:
        """Whether `q` is still the registered queue of its name (not obliterated or forgotten since)."""
        return self._queues.get(q.name) is q

    def known_names(self) -> list[str]:
        return sorted(name for name, q in self._queues.items() if q.known)

    def save(self, q: QueueState) -> None:
        """The queue is listed from now on and its settings are written behind."""
        q.known = True
        self.journal.put_queue(q.name, self.slot(q.name), _encode(q.settings))

    def mark_known(self, q: QueueState) -> None:
        """The first push to a queue: it is listed from now on, until obliterated."""
        self.save(q)
        self.emit_data("queue:created", {"queue": q.name})

    def load(self) -> None:
        for name, blob in self.store.queue_rows():
            q = self.queue(name)
            q.known = True
            q.settings = _decode_settings(blob)

    def forget(self, q: QueueState) -> None:
        """An obliterated queue: its name, settings and stored rows go."""
        self.store.delete_queue_rows(q.name)
        self.journal.delete_queue(q.name)
        del self._queues[q.name]

    def forget_if_ghost(self, name: str) -> None:
        """Let go of a queue nobody pushed to, once nothing refers to it any more."""
        q = self._queues.get(name)
        if q is not None and q.is_idle_ghost():
            del self._queues[name]
