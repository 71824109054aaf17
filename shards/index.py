"""The shard's job index: every job it can name (live, recently finished, only on disk), the results of
removed jobs, unique keys and the tombstones of obliterated queues' active jobs. Only this part writes them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from bunq import errors
from shards.job import Job, from_blob
from shards.journal import Journal
from shards.store import Store

RESULTS_LRU = 5000
TOMBSTONES = 100_000


class JobIndex:
    def __init__(self, journal: Journal, store: Store, finished_cache: int) -> None:
        self.journal = journal
        self.store = store
        self._jobs: dict[str, Job] = {}
        # live jobs by id; other parts read it, only the index writes it (compacted in place, so a
        # reference taken once stays good)
        self.jobs: Mapping[str, Job] = self._jobs
        self.finished: OrderedDict[str, Job] = OrderedDict()
        self.finished_cache = finished_cache
        self.results: OrderedDict[str, bytes | None] = OrderedDict()
        self._unique: dict[tuple[str, str], str] = {}
        self.tombstones: OrderedDict[str, None] = OrderedDict()

    # ---- lookups --------------------------------------------------------------------------------

    def find(self, job_id: str) -> Job | None:
        """Any job this shard holds, live, recently finished or only on disk."""
        job = self._jobs.get(job_id) or self.finished.get(job_id)
        if job is not None:
            return job
        unwritten = self.journal.unwritten(job_id)
        if unwritten is not None:
            return unwritten or None  # False: deleted, though the database may still hold it
        blob = self.store.get(job_id)
        return from_blob(blob) if blob is not None else None

    def live(self, job_id: str, finished: str = "Job is not waiting, delayed or active") -> Job:
        """The live job `job_id`; for a finished one, a 400 with `finished`."""
        job = self._jobs.get(job_id)
        if job is None:
            self.not_live(job_id, finished)
        return job

    def not_live(self, job_id: str, message: str) -> NoReturn:
        """Refuse an operation on `job_id`: 404 when no job has that id, else 400 with `message`."""
        if job_id not in self.results and self.find(job_id) is None:
            raise errors.NotFound("Job not found")
        raise errors.BadRequest(message)

    def holder(self, queue: str, unique_key: str) -> str | None:
        """The id of the live job holding `unique_key` in `queue`."""
        return self._unique.get((queue, unique_key))

    # ---- live jobs ------------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        """A job becomes live, taking its unique key."""
        self._jobs[job.id] = job
        if job.unique_key is not None:
            self._unique[(job.queue, job.unique_key)] = job.id

    def readd(self, job: Job) -> None:
        """A finished job runs again; its unique key only if nobody took it meanwhile."""
        self._jobs[job.id] = job
        if job.unique_key is not None:
            self._unique.setdefault((job.queue, job.unique_key), job.id)

    def keep_dead(self, job: Job) -> None:
        """A dead-lettered job stays live (its unique key already went)."""
        self._jobs[job.id] = job

    def drop(self, job: Job) -> None:
        """A job stops being live and lets go of its unique key."""
        self._jobs.pop(job.id, None)
        if job.unique_key is not None:
            self.drop_unique(job)

    def drop_unique(self, job: Job) -> None:
        if job.unique_key is not None and self._unique.get((job.queue, job.unique_key)) == job.id:
            del self._unique[(job.queue, job.unique_key)]

    def free_unique(self, job: Job) -> bool:
        """The live `job` lets go of the unique key it holds for good: a push may take the key now, and the job
        no longer names it (stored so), so a restart does not give it back. False if it held none."""
        key = job.unique_key
        if key is None or self._unique.get((job.queue, key)) != job.id:
            return False
        del self._unique[(job.queue, key)]
        job.unique_key = None
        self.journal.put(job)
        return True

    # ---- finished jobs and results ----------------------------------------------------------------

    def finish(self, job: Job) -> None:
        """Keep a finished job in memory for lookups (the most recent `finished_cache`)."""
        if self.finished_cache <= 0:
            return
        self.finished[job.id] = job
        while len(self.finished) > self.finished_cache:
            self.finished.popitem(last=False)

    def unfinish(self, job_id: str) -> None:
        self.finished.pop(job_id, None)

    def remember_result(self, job_id: str, result: bytes | None) -> None:
        """The result of a job removed on completion, for a while (the spec's results LRU)."""
        self.results[job_id] = result
        while len(self.results) > RESULTS_LRU:
            self.results.popitem(last=False)

    def forget_finished(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            del self.finished[job_id]

    # ---- finished jobs on disk (read after a flush: these read committed rows) ------------------------

    def completed_page(self, queue: str, limit: int, offset: int) -> list[Job]:
        return [from_blob(blob) for blob in self.store.completed_page(queue, limit, offset)]

    def completed_before(self, queue: str, before: int, limit: int) -> list[Job]:
        return [from_blob(blob) for blob in self.store.completed_before(queue, before, limit)]

    def completed_all(self, queue: str) -> list[Job]:
        """Every completed job of `queue`, the copy in memory where there is one."""
        return [self.finished.get(j.id, j) for j in map(from_blob, self.store.completed_all(queue))]

    # ---- obliterated queues -----------------------------------------------------------------------

    def bury(self, job_ids: Iterable[str]) -> None:
        """Active jobs of an obliterated queue: their later acks and fails succeed without effect."""
        for job_id in job_ids:
            self.tombstones[job_id] = None
        while len(self.tombstones) > TOMBSTONES:
            self.tombstones.popitem(last=False)

    def forget_queue(self, queue: str) -> list[Job]:
        """Every live and finished job of `queue` leaves the index; returns the live ones."""
        live = [j for j in self._jobs.values() if j.queue == queue]
        for job in live:
            self.drop(job)
        self.forget_finished([i for i, j in self.finished.items() if j.queue == queue])
        return live

    def compact(self) -> None:
        """Give back what the dicts grew to (a dict never shrinks by itself); in place, for the readers."""
        _shrink(self._jobs)
        _shrink(self._unique)


def _shrink(table: dict[Any, Any]) -> None:
    kept = dict(table)
    table.clear()
    table.update(kept)  # an update into an empty dict takes the copy's compact table
