"""The write-behind journal: handlers record changed jobs here; one flush writes them in one transaction."""

from __future__ import annotations

from shards.job import Job, to_blob
from shards.store import Store


class Journal:
    """Changes to one job inside a flush window coalesce: the flush writes its latest state once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dirty: dict[str, Job] = {}
        self.deleted: set[str] = set()

    def put(self, job: Job) -> None:
        self.dirty[job.id] = job

    def delete(self, job_id: str) -> None:
        self.dirty.pop(job_id, None)
        self.deleted.add(job_id)

    def pending(self) -> int:
        return len(self.dirty) + len(self.deleted)

    def flush(self) -> int:
        if not self.dirty and not self.deleted:
            return 0
        rows = [(j.id, j.slot, j.queue, j.state, to_blob(j)) for j in self.dirty.values()]
        deletes = [i for i in self.deleted if i not in self.dirty]
        self.store.write(rows, deletes)
        count = len(rows) + len(deletes)
        self.dirty = {}
        self.deleted = set()
        return count
