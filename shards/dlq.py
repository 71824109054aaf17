"""The dead-letter queue: its entries, retry and purge, and its limits (maxEntries, the maxAge sweep,
auto-retry). Its timers call its own methods."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Protocol

from bunq.catalogue import EventName
from bunq.protocol import DlqReason, DlqStats, FlowPolicy, State
from shards.index import JobIndex
from shards.job import Job
from shards.journal import Journal
from shards.queues import QueueState
from shards.registry import QueueRegistry
from shards.timers import Timers

DLQ_SWEEP_MS = 60_000


class Transitions(Protocol):
    """What the DLQ asks of the engine: the job transitions and events it does not own."""

    def remove(self, job: Job, *, event: bool = True, parent_policy: FlowPolicy | None = None) -> None: ...

    def requeue(self, q: QueueState, job: Job) -> None: ...

    def forget_removed(self, count: int) -> None: ...

    def emit(self, name: EventName, job: Job, **extra: Any) -> None: ...

    def emit_data(self, name: EventName, data: dict[str, Any]) -> None: ...


class DeadLetters:
    def __init__(
        self,
        clock: Callable[[], int],
        timers: Timers,
        journal: Journal,
        registry: QueueRegistry,
        index: JobIndex,
        engine: Transitions,
    ) -> None:
        self.clock = clock
        self.timers = timers
        self.journal = journal
        self.registry = registry
        self.index = index
        self.engine = engine

    # ---- commands -------------------------------------------------------------------------------

    def retry(self, q: QueueState, job_id: str | None, limit: int | None = None) -> int:
        """Dead-lettered jobs (one, or all of the queue, or its `limit` oldest) run again from scratch."""
        ids = [job_id] if job_id is not None else list(itertools.islice(q.dlq, limit))
        count = 0
        for i in ids:
            job = q.dlq.pop(i, None)
            if job is None:
                continue
            self.engine.requeue(q, job)
            count += 1
            if job_id is not None:
                self.engine.emit("dlq:retried", job)
        if job_id is None:
            self.engine.emit_data("dlq:retry-all", {"queue": q.name, "count": count})
        return count

    def purge(self, q: QueueState) -> int:
        jobs = list(q.dlq.values())
        for job in jobs:
            self.engine.remove(job, event=False)
        self.engine.forget_removed(len(jobs))
        self.engine.emit_data("dlq:purged", {"queue": q.name, "count": len(jobs)})
        return len(jobs)

    def remove(self, q: QueueState, job_id: str) -> bool:
        """One entry removed for good (`job:removed`); False when `q`'s DLQ has no `job_id`."""
        job = q.dlq.get(job_id)
        if job is None:
            return False
        self.engine.remove(job)
        return True

    def stats(self, q: QueueState) -> DlqStats:
        """The entries by reason, the auto-retries due and not run yet, the entries past maxAge that the sweep
        has not taken yet, and when the oldest and newest entered (the DLQ is in the order they entered)."""
        now = self.clock()
        max_age = q.settings.dlq.max_age
        by_reason: dict[str, int] = {}
        pending = expired = 0
        for job in q.dlq.values():
            reason = job.dlq_reason or "unknown"
            by_reason[reason] = by_reason.get(reason, 0) + 1
            retry_at = self.next_retry_at(q, job)
            pending += retry_at is not None and retry_at <= now
            expired += (job.dlq_entered_at or 0) + max_age <= now
        oldest = next(iter(q.dlq.values())).dlq_entered_at if q.dlq else None
        newest = next(reversed(q.dlq.values())).dlq_entered_at if q.dlq else None
        return DlqStats(len(q.dlq), by_reason, pending, expired, oldest, newest)

    def next_retry_at(self, q: QueueState, job: Job) -> int | None:
        """When the entry's auto-retry is due; None when auto-retry is off or it has had them all."""
        config = q.settings.dlq
        if not config.auto_retry or job.auto_retries >= config.max_auto_retries:
            return None
        return (job.dlq_entered_at or 0) + config.auto_retry_interval

    def trim(self, q: QueueState) -> None:
        """Enforce maxEntries: the oldest entries go."""
        while len(q.dlq) > q.settings.dlq.max_entries:
            self.engine.remove(next(iter(q.dlq.values())), event=False)

    # ---- the limits -----------------------------------------------------------------------------

    def add(self, q: QueueState, job: Job, reason: DlqReason) -> None:
        """A job enters the DLQ (it has already left its previous state): kept live with its reason, then
        the queue trimmed to maxEntries, its max-age sweep armed and, if enabled, an auto-retry."""
        job.state = State.FAILED
        job.dlq_entered_at = self.clock()
        job.dlq_reason = reason
        q.dlq[job.id] = job
        self.index.keep_dead(job)
        self.journal.put(job)
        self.engine.emit("dlq:added", job, reason=reason, error=job.failed_reason)
        config = q.settings.dlq
        self.trim(q)
        self._arm_sweep(q)
        if config.auto_retry and job.auto_retries < config.max_auto_retries:
            self.timers.at(self.clock() + config.auto_retry_interval, self._auto_retry_due, job)

    def resume(self) -> None:
        """After recovery: each queue's restored entries in the order they entered, and their max-age
        sweep and auto-retries armed again (timers do not outlive a process)."""
        now = self.clock()
        for q in self.registry.queues.values():
            if not q.dlq:
                continue
            ordered = sorted(q.dlq.values(), key=lambda j: j.dlq_entered_at or 0)
            q.dlq.clear()
            q.dlq.update((job.id, job) for job in ordered)
            self._arm_sweep(q)
            config = q.settings.dlq
            for job in ordered if config.auto_retry else ():
                if job.auto_retries < config.max_auto_retries:
                    due = max(now, (job.dlq_entered_at or now) + config.auto_retry_interval)
                    self.timers.at(due, self._auto_retry_due, job)

    def _auto_retry_due(self, job: Job) -> None:
        q = self.registry.queues.get(job.queue)
        if q is None or q.dlq.get(job.id) is not job or not q.settings.dlq.auto_retry:
            return
        job.auto_retries += 1
        self.retry(q, job.id)

    def config_changed(self, q: QueueState) -> None:
        """A new maxEntries or maxAge applies to the entries already there."""
        self.trim(q)
        self._arm_sweep(q)

    def _arm_sweep(self, q: QueueState) -> None:
        """The sweep is due when the oldest entry passes maxAge (entries are kept in the order they entered);
        one armed for later gives way to an earlier one (a shorter maxAge)."""
        if not q.dlq:
            return
        oldest = next(iter(q.dlq.values()))
        due = min(self.clock() + DLQ_SWEEP_MS, (oldest.dlq_entered_at or 0) + q.settings.dlq.max_age + 1)
        if q.dlq_sweep_due is not None and q.dlq_sweep_due <= due:
            return
        q.dlq_sweep_due = due
        self.timers.at(due, self._sweep_due, q)

    def _sweep_due(self, q: QueueState) -> None:
        if q.dlq_sweep_due is None or q.dlq_sweep_due > self.clock():
            return  # superseded by an earlier sweep, which armed the next one
        q.dlq_sweep_due = None
        if not self.registry.current(q):
            return
        before = self.clock() - q.settings.dlq.max_age
        for job in list(itertools.takewhile(lambda j: (j.dlq_entered_at or 0) < before, q.dlq.values())):
            self.engine.remove(job, event=False)
        self._arm_sweep(q)
