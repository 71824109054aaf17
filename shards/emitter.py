"""What a shard emits: job and queue events to its `EventSink` (the XPUB publisher, or nothing), built
only when someone listens, and the coalesced `queue:counts` of the queues the journal saw change."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from bunq.catalogue import WORKER_TALLY, EventName
from shards.job import Job
from shards.journal import Journal
from shards.queues import QueueState

TALLY_EVERY_S = 0.05  # the worker registry's counts trail by this much at most


class EventSink(Protocol):
    dropped: int  # events the sink could not pass on (a full socket); reported in the shard's stats

    def wants(self, name: str) -> bool: ...

    def publish(self, name: str, data: dict[str, Any]) -> None: ...


class NoEvents:
    dropped = 0

    def wants(self, name: str) -> bool:
        return False

    def publish(self, name: str, data: dict[str, Any]) -> None:
        return None


class Emitter:
    def __init__(self, events: EventSink) -> None:
        self.events = events
        # per owner, since the last tally: [jobs started, completed, failed, the job it started last or None]
        self.tally: dict[str, list[Any]] = {}
        self.tally_every_s = TALLY_EVERY_S
        self.tally_due = 0.0

    def count(self, owner: str | None, job_id: str, outcome: int) -> None:
        """A job leased to `owner` started (outcome 0), completed (1) or failed (2): for the worker registry's
        counts, sent together every `TALLY_EVERY_S` (`publish_tally`) rather than as an event per job. Once
        per turn cost the aggregator 4 µs per job of a busy worker: a turn moves few jobs."""
        if owner is None or not self.events.wants(WORKER_TALLY):
            return
        entry = self.tally.get(owner)
        if entry is None:
            entry = self.tally[owner] = [0, 0, 0, None]
        entry[outcome] += 1
        if outcome == 0:
            entry[3] = job_id
        elif entry[3] == job_id:
            entry[3] = None

    def publish_tally(self) -> None:
        if self.tally and time.monotonic() >= self.tally_due:
            tally, self.tally = self.tally, {}
            self.tally_due = time.monotonic() + self.tally_every_s
            self.events.publish(WORKER_TALLY, {"workers": tally})

    def emit(self, name: EventName, job: Job, **extra: Any) -> None:
        if self.events.wants(name):
            data = {"queue": job.queue, "jobId": job.id}
            data.update((k, v) for k, v in extra.items() if v is not None or k == "error")
            self.events.publish(name, data)

    def emit_data(self, name: EventName, data: dict[str, Any]) -> None:
        if self.events.wants(name):
            self.events.publish(name, data)

    def publish_counts(self, journal: Journal, queues: Mapping[str, QueueState]) -> None:
        """`queue:counts` for every queue whose counts changed since the last call (bursts coalesce)."""
        touched = journal.touched
        if not self.events.wants("queue:counts"):
            journal.touched = None
            return
        if touched is None:
            journal.touched = set()
            return
        for name in touched:
            q = queues.get(name)
            if q is not None:
                self.events.publish("queue:counts", q.describe())
        touched.clear()
