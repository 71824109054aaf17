"""Handlers for the job path: push, pull, ack, fail, lookups and cancel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, assert_never

from bunq import protocol as p
from bunq.errors import DISK_FULL, BadRequest, NotFound, Unavailable
from bunq.routing import new_job_id
from shards import flows
from shards.handlers import push_options
from shards.job import Job, render
from shards.queues import Waiter

if TYPE_CHECKING:
    from shards.dedup import Dedup
    from shards.index import JobIndex
    from shards.leases import Leases
    from shards.pulls import Pulls
    from shards.queues import QueueState
    from shards.waiters import Respond


class JobPath(Protocol):
    """What the job-path handlers use of the engine."""

    @property
    def index(self) -> JobIndex: ...

    @property
    def jobs(self) -> Mapping[str, Job]: ...

    @property
    def queues(self) -> Mapping[str, QueueState]: ...

    @property
    def leases(self) -> Leases: ...

    @property
    def pulls(self) -> Pulls: ...

    @property
    def dedup(self) -> Dedup: ...

    @property
    def disk_full(self) -> bool: ...

    def clock(self) -> int: ...

    def after_next_commit(self, respond: Respond, reply: p.Reply) -> None: ...

    def slot(self, queue: str) -> int: ...

    def queue(self, name: str) -> QueueState: ...

    def admit(self, job: Job, q: QueueState) -> None: ...

    def take(self, q: QueueState, count: int, owner: str | None, lock_ttl: int | None) -> list[Job]: ...

    def complete(self, job: Job, result: bytes | None) -> None: ...

    def fail(
        self, job: Job, error: str | None, reason: p.DlqReason, *, backoff: bool = True, final: bool = False
    ) -> None: ...

    def end_lease(self, job: Job) -> QueueState: ...

    def enqueue(self, job: Job, q: QueueState) -> None: ...

    def remove(self, job: Job, *, event: bool = True, parent_policy: p.FlowPolicy | None = None) -> None: ...


def add_jobs(engine: JobPath, cmd: p.AddJobs, respond: Respond) -> p.Reply | None:
    if cmd.options:
        return push_options.add_jobs(engine, cmd, respond)
    q = engine.queue(cmd.queue)
    now = engine.clock()
    slot = engine.slot(cmd.queue)
    ids: list[str] = []
    durable = False
    if engine.disk_full and any(spec.durable for spec in cmd.jobs):
        raise Unavailable(DISK_FULL)
    for spec in cmd.jobs:
        durable = durable or spec.durable
        existing_id = existing(engine.index, cmd.queue, spec)
        if existing_id is not None:
            ids.append(existing_id)
            continue
        job = new_job(cmd.queue, slot, spec, now)
        engine.admit(job, q)
        ids.append(job.id)
    reply = p.Ids(ids)
    if durable:
        engine.after_next_commit(respond, reply)
        return None
    return reply


def new_job(queue: str, slot: int, spec: p.NewJob, now: int) -> Job:
    custom_id = spec.job_id
    # Job's fields in their order, positionally (a keyword call costs 4x as much, per job of every push);
    # test_job_options checks every field lands where it belongs.
    job = Job(
        custom_id or spec.id or new_job_id(slot),  # id
        queue,
        slot,
        spec.data,
        spec.priority,
        now,  # created_at
        now + spec.delay,  # run_at
        0,  # attempts
        spec.max_attempts,
        spec.backoff,
        spec.ttl,
        spec.timeout,
        spec.unique_key,
        custom_id,
        spec.tags,
        spec.group_id,
        spec.lifo,
        spec.remove_on_complete,
        spec.remove_on_fail,
        spec.durable,
        spec.depends_on,
        spec.repeat,
        spec.name,
    )  # state WAITING and seq 0 until admitted: `enqueue` gives it its place
    if spec.depends_on:
        job.pending_deps = tuple(dict.fromkeys(d for d in spec.depends_on if d != custom_id))
    if job.repeat is not None:
        job.run_at = flows.first_run_at(job, now)
    return job


def existing(index: JobIndex, queue: str, spec: p.NewJob) -> str | None:
    """The id a push resolves to without creating anything: same `jobId`, or a live holder of `uniqueKey`."""
    if spec.job_id is not None:
        job = index.find(spec.job_id)
        if job is not None:
            return job.id
    if spec.unique_key is not None:
        return index.holder(queue, spec.unique_key)
    return None


def pull_jobs(engine: JobPath, cmd: p.PullJobs, respond: Respond) -> p.Reply | None:
    q = engine.queues.get(cmd.queue)
    taken = engine.take(q, cmd.count, cmd.owner, cmd.lock_ttl) if q is not None else []
    if taken or cmd.timeout_ms <= 0:
        return p.Jobs([render(job) for job in taken], [job.token for job in taken])
    q = q or engine.queue(cmd.queue)
    deadline = engine.clock() + cmd.timeout_ms
    engine.pulls.park(q, Waiter(respond, cmd.count, cmd.owner, cmd.lock_ttl, deadline, queue=cmd.queue))
    return None


def ack_jobs(engine: JobPath, cmd: p.AckJobs, respond: Respond) -> p.Reply:
    failed: dict[str, str] = {}
    missing: list[str] = []
    acked = 0
    tombstones = engine.index.tombstones
    leased = engine.leases.leased
    for i, job_id in enumerate(cmd.ids):
        token = cmd.tokens[i] if i < len(cmd.tokens) else None
        if job_id in tombstones:
            acked += 1  # its queue was obliterated: the late ack changes nothing
            continue
        try:
            job = leased(job_id, token)
        except (BadRequest, NotFound) as exc:
            failed[job_id] = exc.message
            if isinstance(exc, NotFound):
                missing.append(job_id)
            continue
        if i < len(cmd.remove) and cmd.remove[i]:
            job.remove_on_complete = True
        engine.complete(job, cmd.results[i] if i < len(cmd.results) else None)
        acked += 1
    return p.AckOutcome(acked, failed, missing)


def fail_job(engine: JobPath, cmd: p.FailJob, respond: Respond) -> p.Reply:
    if cmd.id in engine.index.tombstones:
        return p.Done()
    job = engine.leases.leased(cmd.id, cmd.token)
    if cmd.remove_on_fail:
        job.remove_on_fail = True
    if cmd.unrecoverable:
        engine.fail(job, cmd.error, p.DlqReason.UNRECOVERABLE, final=True)
    else:
        engine.fail(job, cmd.error, p.DlqReason.MAX_ATTEMPTS_EXCEEDED)
    return p.Done()


def release_jobs(engine: JobPath, cmd: p.ReleaseJobs, respond: Respond) -> p.Reply:
    """Jobs of a worker that went away go back to waiting at once, their attempts untouched."""
    released = 0
    for i, job_id in enumerate(cmd.ids):
        job = engine.jobs.get(job_id)
        token = cmd.tokens[i] if i < len(cmd.tokens) else None
        if job is None or job.state != p.State.ACTIVE or (token is not None and job.token != token):
            continue
        q = engine.end_lease(job)
        job.run_at = engine.clock()
        engine.enqueue(job, q)
        released += 1
    return p.Count(released)


def get_job(engine: JobPath, cmd: p.GetJob, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.id)
    if job is None:
        raise NotFound("Job not found")
    return p.JobDoc(render(job))


def get_job_state(engine: JobPath, cmd: p.GetJobState, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.id)
    return p.JobState(job.state if job is not None else "unknown")


def get_job_result(engine: JobPath, cmd: p.GetJobResult, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.id)
    if job is not None:
        return p.JobResult(True, job.result)
    if cmd.id in engine.index.results:
        return p.JobResult(True, engine.index.results[cmd.id])
    return p.JobResult(False)


def cancel_job(engine: JobPath, cmd: p.CancelJob, respond: Respond) -> p.Reply:
    """Cancel works on waiting, delayed and active jobs (and those waiting for children); a finished job
    (completed, dead-lettered, expired) stays as it is, as the reference keeps it."""
    job = engine.index.find(cmd.id)
    if job is None:
        raise NotFound("Job not found")
    match job.state:
        case p.State.WAITING | p.State.DELAYED | p.State.ACTIVE | p.State.WAITING_CHILDREN:
            engine.remove(job, parent_policy=cmd.parent_policy)
        case p.State.COMPLETED | p.State.FAILED | p.State.EXPIRED | p.State.REMOVED:
            raise BadRequest("Job not found or cannot be cancelled")
        case _:
            assert_never(job.state)
    return p.Done()
