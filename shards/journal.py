"""The write-behind journal: handlers record changed jobs here; one flush writes them in one transaction."""

from __future__ import annotations

import collections
from typing import Literal

import msgspec

from bunq.protocol import Command
from shards.job import Job, to_blob
from shards.store import Batch, Store

_encode = msgspec.msgpack.Encoder().encode


class Journal:
    """Changes to one job inside a flush window coalesce: the flush writes its latest state once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dirty: dict[str, Job] = {}
        self.deleted: set[str] = set()
        self.logs: dict[str, tuple[int, bytes] | None] = {}
        self.outbox: dict[tuple[str, str], tuple[int, bytes] | None] = {}
        self.queues: dict[str, tuple[int, bytes] | None] = {}
        self.touched: set[str] | None = None  # queues whose counts changed, while someone listens
        self.in_flight: collections.deque[Snapshot] = collections.deque()  # taken, being written, in order

    def put(self, job: Job) -> None:
        self.dirty[job.id] = job
        if self.touched is not None:
            self.touched.add(job.queue)

    def delete(self, job_id: str, queue: str) -> None:
        self.dirty.pop(job_id, None)
        self.deleted.add(job_id)
        if self.touched is not None:
            self.touched.add(queue)

    def put_queue(self, name: str, slot: int, blob: bytes) -> None:
        self.queues[name] = (slot, blob)

    def delete_queue(self, name: str) -> None:
        self.queues[name] = None

    def put_logs(self, job_id: str, slot: int, blob: bytes) -> None:
        self.logs[job_id] = (slot, blob)

    def delete_logs(self, job_id: str) -> None:
        self.logs[job_id] = None

    def put_outbox(self, key: tuple[str, str], slot: int, command: Command) -> None:
        self.outbox[key] = (slot, _encode(command))

    def delete_outbox(self, key: tuple[str, str]) -> None:
        self.outbox[key] = None

    def pending(self) -> int:
        return len(self.dirty) + len(self.deleted) + len(self.logs) + len(self.outbox) + len(self.queues)

    def flush(self) -> int:
        """Write what is recorded, in one transaction, now."""
        taken = self.take()
        if taken is None:
            return 0
        self.store.write(taken[0])
        return taken[1].size()

    def take(self) -> tuple[Batch, Snapshot] | None:
        """What is recorded, as a batch to write and the snapshot it was made from; the journal starts over."""
        if not self.pending():
            return None
        snapshot = Snapshot(self.dirty, self.deleted, self.logs, self.outbox, self.queues)
        batch = Batch(
            # `ts` (its finishing time, else its creation) feeds the clean/list time index
            jobs=[
                (j.id, j.slot, j.queue, j.state, j.completed_at or j.created_at, to_blob(j))
                for j in self.dirty.values()
            ],
            deleted_jobs=[i for i in self.deleted if i not in self.dirty],
            logs=[(i, v[0], v[1]) for i, v in self.logs.items() if v is not None],
            deleted_logs=[i for i, v in self.logs.items() if v is None],
            outbox=[(k[0], k[1], v[0], v[1]) for k, v in self.outbox.items() if v is not None],
            deleted_outbox=[k for k, v in self.outbox.items() if v is None],
            queues=[(name, v[0], v[1]) for name, v in self.queues.items() if v is not None],
            deleted_queues=[name for name, v in self.queues.items() if v is None],
        )
        self.dirty = {}
        self.deleted = set()
        self.logs = {}
        self.outbox = {}
        self.queues = {}
        return batch, snapshot

    def restore(self, snapshot: Snapshot) -> None:
        """A batch that did not commit: its changes are recorded again, under any made since."""
        for job_id, job in snapshot.dirty.items():
            if job_id not in self.dirty and job_id not in self.deleted:
                self.dirty[job_id] = job
        self.deleted |= {i for i in snapshot.deleted if i not in self.dirty}
        for job_id, log in snapshot.logs.items():
            self.logs.setdefault(job_id, log)
        for key, entry in snapshot.outbox.items():
            self.outbox.setdefault(key, entry)
        for name, queue in snapshot.queues.items():
            self.queues.setdefault(name, queue)

    def unwritten(self, job_id: str) -> Job | Literal[False] | None:
        """A job changed but not yet committed: its latest state, False when it was deleted, None when the
        database has its latest state (or never had it)."""
        if job_id in self.dirty:
            return self.dirty[job_id]
        if job_id in self.deleted:
            return False
        for snapshot in reversed(self.in_flight):
            if job_id in snapshot.dirty:
                return snapshot.dirty[job_id]
            if job_id in snapshot.deleted:
                return False
        return None


class Snapshot:
    """The journal's records of one flush window, kept while their batch is written."""

    __slots__ = ("dirty", "deleted", "logs", "outbox", "queues")

    def __init__(
        self,
        dirty: dict[str, Job],
        deleted: set[str],
        logs: dict[str, tuple[int, bytes] | None],
        outbox: dict[tuple[str, str], tuple[int, bytes] | None],
        queues: dict[str, tuple[int, bytes] | None],
    ) -> None:
        self.dirty = dirty
        self.deleted = deleted
        self.logs = logs
        self.outbox = outbox
        self.queues = queues

    def size(self) -> int:
        return len(self.dirty) + len(self.deleted) + len(self.logs) + len(self.outbox) + len(self.queues)
