"""Windows on a job's keys (ws-commands.md's `dedup` and `debounceId` push options), over the job index's
unique keys.

A job pushed with `uniqueKey` and `dedup.ttl` holds its key for that long, not for as long as it lives:
when the window ends the job lets go of the key for good (`JobIndex.free_unique`: it no longer names it,
stored so, so a restart does not give it back) and the next push with the key makes a new job. `extend`
moves a holder's window. A debounce key names the last job pushed with it for `debounceTtl` ms; a push with
the key within that window replaces that job while it has not started. Both are timers on the shard's one
heap, each set for a job and checking, when due, that what it was set for still holds; nothing here runs
for a push without these options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shards.index import JobIndex
from shards.job import DELAYED, WAITING, Hold, Job
from shards.journal import Journal
from shards.timers import Timers


class Dedup:
    def __init__(self, clock: Callable[[], int], timers: Timers, journal: Journal, index: JobIndex) -> None:
        self.clock = clock
        self.timers = timers
        self.journal = journal
        self.index = index
        self.jobs: Mapping[str, Job] = index.jobs
        self.debounce: dict[tuple[str, str], str] = {}  # (queue, debounce id) → the last job pushed with it

    def arm(self, job: Job) -> None:
        """A job just admitted (or restored) with a window: time it, and name it by its debounce key."""
        hold = job.hold
        if hold is None:
            return
        if hold.dedup_until is not None:
            self.timers.at(hold.dedup_until, self._dedup_due, job)
        if hold.debounce_id is not None and hold.debounce_until is not None:
            key = (job.queue, hold.debounce_id)
            current = self.jobs.get(self.debounce.get(key, ""))
            if current is None or current.created_at <= job.created_at:
                self.debounce[key] = job.id
            self.timers.at(hold.debounce_until, self._debounce_due, job)

    def restore(self, job: Job) -> None:
        """At start-up, a live job with a window: one that ended while the shard was down ends now."""
        hold = job.hold
        if hold is None:
            return
        if hold.dedup_until is not None and hold.dedup_until <= self.clock():
            hold.dedup_until = None
            self.index.free_unique(job)
        self.arm(job)

    def extend(self, holder: Job, until: int) -> None:
        """A duplicate push with `extend`: the holder keeps its key until `until`."""
        if holder.hold is None:
            holder.hold = Hold(until)
        else:
            holder.hold.dedup_until = until
        self.journal.put(holder)
        self.timers.at(until, self._dedup_due, holder)

    def debounced(self, queue: str, debounce_id: str) -> Job | None:
        """The job a push with this debounce key replaces: the last pushed with it, within its window, not
        started, and awaited by no other job."""
        job = self.jobs.get(self.debounce.get((queue, debounce_id), ""))
        if job is None or job.state not in (WAITING, DELAYED) or job.dependents or job.hold is None:
            return None
        until = job.hold.debounce_until
        return job if until is not None and until > self.clock() else None

    def _dedup_due(self, job: Job) -> None:
        hold = job.hold
        if hold is None or hold.dedup_until is None or hold.dedup_until > self.clock():
            return  # extended since (a later entry is due then), or the window went
        if self.jobs.get(job.id) is job:
            self.index.free_unique(job)

    def _debounce_due(self, job: Job) -> None:
        hold = job.hold
        if hold is None or hold.debounce_id is None or (hold.debounce_until or 0) > self.clock():
            return
        key = (job.queue, hold.debounce_id)
        if self.debounce.get(key) == job.id:
            del self.debounce[key]
