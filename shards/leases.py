"""Leases on active jobs: lock tokens and their expiry, processing timeouts, heartbeats and stall detection.

Every way a lease can end without an ack (lock expiry, `timeout`, a stall) is handed to the engine's
`stall` transition, which charges the job one attempt; a job past `maxAttempts` or `maxStalls` goes to
the dead-letter queue.

Lock expiries are kept by tick of `LOCK_TICK_MS`: one timer per tick that has locks, and a table of the
locks expiring in it, which a lease leaves as soon as it ends. A timer per lock stayed in the heap for the
lock's whole time after the ack, 300 bytes each: 30 s of a worker draining 30,000 jobs a second held 270 MB.
A lock therefore expires up to one tick late.
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
LOCK_TICK_MS = 100
NOT_ACTIVE = "Job not found or not active"

OnStall = Callable[[Job, DlqReason, bool], None]  # (job, reason, backoff)


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
        self.locks: dict[int, dict[str, int]] = {}  # tick -> {job id: its lock's expiry}, for ticks to come

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
            self.timers.at(now + job.timeout, self._timeout_due, (job.id, now))
        if q.stall_check_due is None:
            q.stall_check_due = now + q.settings.stall.stall_interval
            self.timers.at(q.stall_check_due, self._stall_check_due, q)

    def arm_lock(self, job: Job, expires_at: int) -> None:
        self.disarm_lock(job)
        job.lock_expires_at = expires_at
        tick = -(-expires_at // LOCK_TICK_MS)
        due = self.locks.get(tick)
        if due is None:
            due = self.locks[tick] = {}
            self.timers.at(tick * LOCK_TICK_MS, self._locks_due, tick)
        due[job.id] = expires_at  # by id, not the Job: a removed job is not kept alive until the tick

    def disarm_lock(self, job: Job) -> None:
        """The job's lock no longer expires (its lease ended, or the lock is being moved)."""
        if job.lock_expires_at is not None:
            due = self.locks.get(-(-job.lock_expires_at // LOCK_TICK_MS))
            if due is not None:
                due.pop(job.id, None)
            job.lock_expires_at = None

    def leased(self, job_id: str, token: str | None) -> Job:
        """The active job `job_id`, provided `token` is its current lease token (when it has one)."""
        job = self.jobs.get(job_id)
        if job is None or job.state != ACTIVE:
            self.index.not_live(job_id, NOT_ACTIVE)
        if job.token is not None:
            if token is None:
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

    def _locks_due(self, tick: int) -> None:
        for job_id, expires_at in list(self.locks.pop(tick, {}).items()):
            job = self.jobs.get(job_id)
            if job is not None and job.state == ACTIVE and job.lock_expires_at == expires_at:
                self.on_stall(job, DlqReason.LOCK_EXPIRED, False)

    def _timeout_due(self, arg: tuple[str, int]) -> None:
        job_id, started_at = arg
        job = self.jobs.get(job_id)
        if job is not None and job.state == ACTIVE and job.started_at == started_at:
            self.on_stall(job, DlqReason.TIMED_OUT, True)

    def _stall_check_due(self, q: QueueState) -> None:
        """Every stallInterval while the queue has active jobs: those without a heartbeat for that long stalled."""
        q.stall_check_due = None
        if not q.active or self.queues.get(q.name) is not q:
            return
        now = self.clock()
        config = q.settings.stall
        for job in list(q.active.values()):
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
