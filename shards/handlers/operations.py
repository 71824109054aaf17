"""Handlers for operations on one job: progress, data, priority, promote, delays, discard, wait, leases, logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from bunq import protocol as p
from bunq.errors import BadRequest, NotFound
from bunq.protocol import State
from shards.job import Job
from shards.logs import LogLine

if TYPE_CHECKING:
    from bunq.catalogue import EventName
    from shards.flows import Flows
    from shards.index import JobIndex
    from shards.journal import Journal
    from shards.leases import Leases
    from shards.logs import JobLogs
    from shards.queues import QueueState
    from shards.waiters import JobWaiters, Respond


class JobOperations(Protocol):
    """What the handlers of operations on one job use of the engine."""

    @property
    def index(self) -> JobIndex: ...

    @property
    def jobs(self) -> Mapping[str, Job]: ...

    @property
    def journal(self) -> Journal: ...

    @property
    def leases(self) -> Leases: ...

    @property
    def flows(self) -> Flows: ...

    @property
    def logs(self) -> JobLogs: ...

    @property
    def job_waiters(self) -> JobWaiters: ...

    def clock(self) -> int: ...

    def queue(self, name: str) -> QueueState: ...

    def emit(self, name: EventName, job: Job, **extra: Any) -> None: ...

    def enqueue(self, job: Job, q: QueueState) -> None: ...

    def reschedule(self, job: Job, run_at: int) -> None: ...

    def end_lease(self, job: Job) -> QueueState: ...

    def dead_letter(self, job: Job, q: QueueState, reason: p.DlqReason) -> None: ...


NOT_DELAYED = "Job not found or not delayed"


def update_progress(engine: JobOperations, cmd: p.UpdateProgress, respond: Respond) -> p.Reply:
    job = engine.leases.leased(cmd.id, cmd.token, token_required=False)  # the spec's progress has no token
    job.progress = cmd.progress
    if cmd.message is not None:  # a progress without a message keeps the last one ("" clears it)
        job.progress_message = cmd.message
    job.last_heartbeat = engine.clock()
    engine.journal.put(job)
    engine.emit("job:progress", job, progress=cmd.progress, message=cmd.message)
    return p.Done()


def get_progress(engine: JobOperations, cmd: p.GetProgress, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.id)
    if job is None:
        raise NotFound("Job not found")
    return p.Progress(job.progress, job.progress_message)


def update_data(engine: JobOperations, cmd: p.UpdateData, respond: Respond) -> p.Reply:
    job = engine.index.live(cmd.id, "Cannot update data of a finished job")
    if job.state == State.FAILED:
        raise BadRequest("Cannot update data of a job in the dead-letter queue")
    job.data = cmd.data
    engine.journal.put(job)
    engine.emit("job:data-updated", job)
    return p.Done()


def change_priority(engine: JobOperations, cmd: p.ChangePriority, respond: Respond) -> p.Reply:
    job = engine.index.live(cmd.id, "Job is not waiting or delayed")
    match job.state:
        case State.WAITING:
            q = engine.queue(job.queue)
            q.unlink_waiting(job)
            job.priority = cmd.priority  # its seq stays: FIFO (or lifo) by its push within the new priority
            q.push(job)
        case State.DELAYED:
            q = engine.queue(job.queue)
            q.unlink_delayed(job)
            job.priority = cmd.priority
            q.add_delayed(job)
        case State.WAITING_CHILDREN:
            job.priority = cmd.priority
        case State.ACTIVE:
            raise BadRequest("Cannot change the priority of an active job")
        case State.COMPLETED | State.FAILED | State.EXPIRED | State.REMOVED:
            raise BadRequest("Job is not waiting or delayed")
        case _:
            assert_never(job.state)
    engine.journal.put(job)
    engine.emit("job:priority-changed", job, newPriority=cmd.priority)
    return p.Done()


def _delayed(engine: JobOperations, job_id: str) -> Job:
    job = engine.jobs.get(job_id)
    if job is None or job.state != State.DELAYED:
        engine.index.not_live(job_id, NOT_DELAYED)
    return job


def promote_job(engine: JobOperations, cmd: p.PromoteJob, respond: Respond) -> p.Reply:
    engine.reschedule(_delayed(engine, cmd.id), engine.clock())
    return p.Done()


def move_to_delayed(engine: JobOperations, cmd: p.MoveToDelayed, respond: Respond) -> p.Reply:
    job = engine.leases.leased(cmd.id, cmd.token)
    q = engine.end_lease(job)
    job.run_at = engine.clock() + cmd.delay
    engine.enqueue(job, q)
    engine.emit("job:delayed", job, delay=cmd.delay)
    return p.Done()


def change_delay(engine: JobOperations, cmd: p.ChangeDelay, respond: Respond) -> p.Reply:
    """A delayed job's new delay (now or less: it is promoted); a waiting job is delayed by it, as the
    reference does (bunqueue's clients' `changeDelay` on a job not yet pulled)."""
    job = engine.jobs.get(cmd.id)
    if job is None or job.state not in (State.DELAYED, State.WAITING):
        engine.index.not_live(cmd.id, NOT_DELAYED)
    if job.state == State.WAITING and cmd.delay == 0:
        return p.Done()  # due already: it keeps its place
    engine.reschedule(job, engine.clock() + cmd.delay)
    engine.emit("job:delay-changed", job, newDelay=cmd.delay)
    return p.Done()


def discard_job(engine: JobOperations, cmd: p.DiscardJob, respond: Respond) -> p.Reply:
    job = engine.index.live(cmd.id, "Cannot discard a finished job")
    if job.state == State.FAILED:
        raise BadRequest("Job is already in the dead-letter queue")
    if job.state == State.ACTIVE:
        job = engine.leases.leased(cmd.id, cmd.token)
        q = engine.end_lease(job)
    else:
        q = engine.queue(job.queue)
        q.unschedule(job)
    job.failed_reason = job.failed_reason or "discarded"
    engine.emit("job:discarded", job)
    engine.dead_letter(job, q, p.DlqReason.DISCARDED)
    return p.Done()


def wait_job(engine: JobOperations, cmd: p.WaitJob, respond: Respond) -> p.Reply | None:
    job = engine.index.find(cmd.id)
    if job is None:
        if cmd.id in engine.index.results:
            return p.WaitOutcome(True, engine.index.results[cmd.id], State.COMPLETED)
        raise NotFound("Job not found")
    match job.state:
        case State.COMPLETED:
            return p.WaitOutcome(True, job.result, State.COMPLETED)
        case State.FAILED | State.EXPIRED:
            return p.WaitOutcome(False, None, job.state)
        case State.WAITING | State.DELAYED | State.ACTIVE | State.WAITING_CHILDREN | State.REMOVED:
            if cmd.timeout_ms <= 0:
                return p.WaitOutcome(False, None, job.state)
        case _:
            assert_never(job.state)
    engine.job_waiters.wait_for(job.id, respond, engine.clock() + cmd.timeout_ms)
    return None


def get_children(engine: JobOperations, cmd: p.GetChildren, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.id)
    if job is None:
        raise NotFound("Job not found")
    return p.ChildrenValues({k: v if v is not None else b"null" for k, v in (job.children or {}).items()})


def heartbeat(engine: JobOperations, cmd: p.Heartbeat, respond: Respond) -> p.Reply:
    """Heartbeats and lock extensions, per id; `failed` says which ids were refused and why."""
    failed: dict[str, str] = {}
    missing: list[str] = []
    done = 0
    leases = engine.leases
    for i, job_id in enumerate(cmd.ids):
        token = cmd.tokens[i] if i < len(cmd.tokens) else None
        duration = cmd.durations[i] if i < len(cmd.durations) else None
        try:
            job = leases.leased(job_id, token, token_required=False)
        except (BadRequest, NotFound) as exc:
            failed[job_id] = exc.message
            if isinstance(exc, NotFound):
                missing.append(job_id)
            continue
        leases.heartbeat(job, duration)
        done += 1
    return p.AckOutcome(done, failed, missing)


def _job_for_logs(engine: JobOperations, job_id: str) -> Job:
    job = engine.index.find(job_id)
    if job is None:
        raise NotFound("Job not found")
    return job


def add_log(engine: JobOperations, cmd: p.AddLog, respond: Respond) -> p.Reply:
    job = _job_for_logs(engine, cmd.id)
    engine.logs.add(job.id, job.slot, LogLine(engine.clock(), cmd.level, cmd.message))
    return p.Done()


def get_logs(engine: JobOperations, cmd: p.GetLogs, respond: Respond) -> p.Reply:
    job = _job_for_logs(engine, cmd.id)
    return p.Logs(engine.logs.get(job.id))


def clear_logs(engine: JobOperations, cmd: p.ClearLogs, respond: Respond) -> p.Reply:
    job = _job_for_logs(engine, cmd.id)
    engine.logs.drop(job.id)
    return p.Done()


def watch_job(engine: JobOperations, cmd: p.WatchJob, respond: Respond) -> p.Reply:
    return engine.flows.watch(cmd)


def resolve_dependency(engine: JobOperations, cmd: p.ResolveDependency, respond: Respond) -> p.Reply:
    engine.flows.resolve(cmd)
    return p.Done()
