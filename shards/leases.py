"""Leases on active jobs: lock tokens and their expiry, processing timeouts, heartbeats and stall detection.

Every way a lease can end without an ack (lock expiry, `timeout`, a stall) is handed to the engine's
`stall` transition, which charges the job one attempt; a job past `maxAttempts` or `maxStalls` goes to
the dead-letter queue.

Lock expiries and processing timeouts are kept by tick of `TICK_MS` (`Deadlines`): one timer per tick that
has any, and a table of the jobs due in it, which a lease leaves as soon as it ends. A timer per lease stayed
in the heap for its whole time after the ack, 300 bytes each: 30 s locks of a worker draining 30,000 jobs a
second held 270 MB, and an hour's `timeout` would have held an hour of them. A lock or a timeout therefore
fires up to one tick late.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from bunq.errors import BadRequest
from bunq.protocol import DlqReason
from shards.index import JobIndex
from shards.job import ACTIVE, Job
from shards.journal import Journal
from shards.queues import QueueState
from shards.timers import Timers

DEFAULT_LOCK_TTL_MS = 30_000
TICK_MS = 100
NOT_ACTIVE = "Job not found or not active"

OnStall = Callable[[Job, DlqReason, bool], None]  # (job, reason, backoff)


class Deadlines:
    """Jobs' deadlines by tick: `on_due(job_id, at)` is called once the tick holding `at` has passed, unless
    the deadline was disarmed first. By id, not the Job, so a removed job is not kept alive until its tick."""

    def __init__(self, timers: Timers, on_due: Callable[[str, int], None]) -> None:
        self.timers = timers
        self.on_due = on_due
        self.ticks: dict[int, dict[str, int]] = {}  # tick -> {job id: its deadline}, for ticks to come

    def arm(self, job_id: str, at: int) -> None:
        tick = -(-at // TICK_MS)
        due = self.ticks.get(tick)
        if due is None:
            due = self.ticks[tick] = {}
            self.timers.at(tick * TICK_MS, self._due, tick)
        due[job_id] = at

    def disarm(self, job_id: str, at: int) -> None:
        due = self.ticks.get(-(-at // TICK_MS))
        if due is not None:
            due.pop(job_id, None)

    def __len__(self) -> int:
        return sum(len(due) for due in self.ticks.values())

    def _due(self, tick: int) -> None:
        for job_id, at in list(self.ticks.pop(tick, {}).items()):
            self.on_due(job_id, at)


class Leases:
    def __init__(
        self,
        clock: Callable[[], int],
        timers: Timers,
        journal: Journal,
        index: JobIndex,
        queues: Mapping[str, QueueState],
        on_stall: OnStall,
    ) -> None:
        self.clock = clock
        self.timers = timers
        self.journal = journal
        self.index = index
        self.jobs = index.jobs
        self.queues = queues
        self.on_stall = on_stall
        self.tokens = Tokens()
        self.locks = Deadlines(timers, self._lock_due)
        self.timeouts = Deadlines(timers, self._timeout_due)

    def grant(self, job: Job, q: QueueState, owner: str | None, lock_ttl: int | None) -> None:
        """Start a lease: with an owner, a lock token that expires unless extended; arm timeout and stall checks."""
        now = job.started_at or self.clock()
        job.owner = owner
        if owner is not None:
            job.token = self.tokens.next()
            job.lock_ttl = lock_ttl or DEFAULT_LOCK_TTL_MS
            self.arm_lock(job, now + job.lock_ttl)
        else:
            job.token = None
            job.lock_ttl = None
            self.disarm_lock(job)
        if job.timeout:
            self.timeouts.arm(job.id, now + job.timeout)
        if q.stall_check_due is None:
            q.stall_check_due = now + q.settings.stall.stall_interval
            self.timers.at(q.stall_check_due, self._stall_check_due, q)

    def arm_lock(self, job: Job, expires_at: int) -> None:
        self.disarm_lock(job)
        job.lock_expires_at = expires_at
        self.locks.arm(job.id, expires_at)

    def disarm_lock(self, job: Job) -> None:
        """The job's lock no longer expires (its lease ended, or the lock is being moved)."""
        if job.lock_expires_at is not None:
            self.locks.disarm(job.id, job.lock_expires_at)
            job.lock_expires_at = None

    def end(self, job: Job) -> None:
        """The lease ends (any outcome): neither its lock nor its timeout can fire any more."""
        self.disarm_lock(job)
        if job.timeout and job.started_at is not None:
            self.timeouts.disarm(job.id, job.started_at + job.timeout)

    def leased(self, job_id: str, token: str | None, *, token_required: bool = True) -> Job:
        """The active job `job_id`, provided `token` is its current lease token (when it has one). Without
        `token_required` (a heartbeat, whose token the spec makes optional, or a progress report, whose body in
        the spec has none) a missing token passes and only a wrong one is refused."""
        job = self.jobs.get(job_id)
        if job is None or job.state != ACTIVE:
            self.index.not_live(job_id, NOT_ACTIVE)
        if job.token is not None:
            if token is None:
                if not token_required:
                    return job
                raise BadRequest(f"Lock token required for job {job_id}")
            if token != job.token:
                raise BadRequest(f"Invalid or expired lock token for job {job_id}")
        return job

    def heartbeat(self, job: Job, duration: int | None) -> None:
        now = self.clock()
        job.last_heartbeat = now
        if job.token is not None:
            self.arm_lock(job, now + (duration or job.lock_ttl or DEFAULT_LOCK_TTL_MS))
        self.journal.put(job)

    # ---- timers ---------------------------------------------------------------------------------

    def _lock_due(self, job_id: str, expires_at: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state == ACTIVE and job.lock_expires_at == expires_at:
            self.on_stall(job, DlqReason.LOCK_EXPIRED, False)

    def _timeout_due(self, job_id: str, at: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state == ACTIVE and job.timeout and (job.started_at or 0) + job.timeout == at:
            self.on_stall(job, DlqReason.TIMED_OUT, True)

    def _stall_check_due(self, q: QueueState) -> None:
        """Every stallInterval while the queue has active jobs: those without a heartbeat for that long stalled."""
        q.stall_check_due = None
        if not q.active or self.queues.get(q.name) is not q:
            return
        now = self.clock()
        config = q.settings.stall
        for job in list(q.active.values()) if config.enabled else ():  # disabled: checked again when enabled
            if job.token is not None:
                continue  # a locked job is governed by its lock's expiry
            started = job.started_at or now
            if now - started < config.grace_period:
                continue
            if now - (job.last_heartbeat or started) >= config.stall_interval:
                self.on_stall(job, DlqReason.STALLED, False)
        if q.active:
            q.stall_check_due = now + config.stall_interval
            self.timers.at(q.stall_check_due, self._stall_check_due, q)


class Tokens:
    """Lease tokens: random UUIDs (version 4), cut from `os.urandom` drawn 4 KiB at a time. `uuid.uuid4()` made a
    system call and a UUID object per token: 40 % of a pull's time in the shard."""

    POOL = 4096

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def next(self) -> str:
        if self.at + 16 > len(self.pool):
            self.pool = os.urandom(self.POOL)
            self.at = 0
        raw = bytearray(self.pool[self.at : self.at + 16])
        self.at += 16
        raw[6] = raw[6] & 0x0F | 0x40  # version 4
        raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
