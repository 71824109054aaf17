"""Leases on active jobs: lock tokens and their expiry, processing timeouts, heartbeats and stall detection.

Every way a lease can end without an ack (lock expiry, `timeout`, a stall) charges the job one attempt;
a job past `maxAttempts` or `maxStalls` goes to the dead-letter queue.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from bunq.errors import BadRequest
from bunq.protocol import DlqReason
from shards.job import ACTIVE, Job
from shards.queues import QueueState

if TYPE_CHECKING:
    from shards.engine import Engine

DEFAULT_LOCK_TTL_MS = 30_000
NOT_ACTIVE = "Job not found or not active"


def grant(engine: Engine, job: Job, q: QueueState, owner: str | None, lock_ttl: int | None) -> None:
    """Start a lease: with an owner, a lock token that expires unless extended; arm timeout and stall checks."""
    now = job.started_at or engine.clock()
    job.owner = owner
    if owner is not None:
        job.token = str(uuid.uuid4())
        job.lock_ttl = lock_ttl or DEFAULT_LOCK_TTL_MS
        arm_lock(engine, job, now + job.lock_ttl)
    else:
        job.token = None
        job.lock_ttl = None
        job.lock_expires_at = None
    if job.timeout:
        engine.timers.at(now + job.timeout, _timeout_due, (engine, job, now))
    if q.stall_check_due is None:
        q.stall_check_due = now + q.settings.stall.stall_interval
        engine.timers.at(q.stall_check_due, _stall_check_due, (engine, q))


def arm_lock(engine: Engine, job: Job, expires_at: int) -> None:
    job.lock_expires_at = expires_at
    engine.timers.at(expires_at, _lock_due, (engine, job, job.token, expires_at))


def leased(engine: Engine, job_id: str, token: str | None) -> Job:
    """The active job `job_id`, provided `token` is its current lease token (when it has one)."""
    job = engine.jobs.get(job_id)
    if job is None or job.state != ACTIVE:
        engine.index.not_live(job_id, NOT_ACTIVE)
    if job.token is not None:
        if token is None:
            raise BadRequest(f"Lock token required for job {job_id}")
        if token != job.token:
            raise BadRequest(f"Invalid or expired lock token for job {job_id}")
    return job


def heartbeat(engine: Engine, job: Job, duration: int | None) -> None:
    now = engine.clock()
    job.last_heartbeat = now
    if job.token is not None:
        arm_lock(engine, job, now + (duration or job.lock_ttl or DEFAULT_LOCK_TTL_MS))
    engine.journal.put(job)


def stalled(engine: Engine, job: Job, reason: DlqReason, *, backoff: bool = False) -> None:
    """A lease ended without an ack: count the stall and charge an attempt (DLQ past either limit)."""
    q = engine.queue(job.queue)
    job.stall_count += 1
    engine.emit("job:stalled", job, reason=reason)
    if job.stall_count >= q.settings.stall.max_stalls and reason is DlqReason.STALLED:
        engine.end_lease(job)
        job.attempts += 1
        job.failed_reason = "Job stalled more than the allowed limit"
        engine.emit("job:failed", job, error=job.failed_reason)
        engine.dead_letter(job, q, DlqReason.STALLED)
        return
    engine.fail(job, f"Job {reason}", reason, backoff=backoff)


def _lock_due(arg: tuple[Engine, Job, str | None, int]) -> None:
    engine, job, token, expires_at = arg
    if job.state == ACTIVE and job.token == token and job.lock_expires_at == expires_at:
        stalled(engine, job, DlqReason.LOCK_EXPIRED)


def _timeout_due(arg: tuple[Engine, Job, int]) -> None:
    engine, job, started_at = arg
    if job.state == ACTIVE and job.started_at == started_at and engine.jobs.get(job.id) is job:
        stalled(engine, job, DlqReason.TIMED_OUT, backoff=True)


def _stall_check_due(arg: tuple[Engine, QueueState]) -> None:
    """Every stallInterval while the queue has active jobs: those without a heartbeat for that long stalled."""
    engine, q = arg
    q.stall_check_due = None
    if not q.active or engine.queues.get(q.name) is not q:
        return
    now = engine.clock()
    config = q.settings.stall
    for job in list(q.active.values()):
        if job.token is not None:
            continue  # a locked job is governed by its lock's expiry
        started = job.started_at or now
        if now - started < config.grace_period:
            continue
        if now - (job.last_heartbeat or started) >= config.stall_interval:
            stalled(engine, job, DlqReason.STALLED)
    if q.active:
        q.stall_check_due = now + config.stall_interval
        engine.timers.at(q.stall_check_due, _stall_check_due, (engine, q))
