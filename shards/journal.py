"""The write-behind journal: handlers record changed jobs here; one flush writes them in one transaction."""

from __future__ import annotations

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
        if not self.pending():
            return 0
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
        self.store.write(batch)
        count = self.pending()
        self.dirty = {}
        self.deleted = set()
        self.logs = {}
        self.outbox = {}
        self.queues = {}
        return count
