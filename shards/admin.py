"""Operations on a whole queue inside a shard: listing its jobs, drain, clean, obliterate, bulk promote and
retry of completed jobs."""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from bunq.protocol import FlowPolicy, Jobs, State
from shards.job import REMOVED_UNFINISHED, Job
from shards.queues import QueueState

if TYPE_CHECKING:
    from bunq.catalogue import EventName
    from shards.flows import Flows
    from shards.index import JobIndex
    from shards.logs import JobLogs
    from shards.registry import QueueRegistry


class QueueWide(Protocol):
    """What operations on a whole queue use of the engine."""

    @property
    def index(self) -> JobIndex: ...

    @property
    def registry(self) -> QueueRegistry: ...

    @property
    def logs(self) -> JobLogs: ...

    @property
    def flows(self) -> Flows: ...

    def clock(self) -> int: ...

    def flush(self) -> None: ...

    def emit_data(self, name: EventName, data: dict[str, Any]) -> None: ...

    def remove(self, job: Job, *, event: bool = True, parent_policy: FlowPolicy | None = None) -> None: ...

    def requeue(self, q: QueueState, job: Job) -> None: ...

    def reschedule(self, job: Job, run_at: int) -> None: ...

    def forget_removed(self, count: int) -> None: ...


# a listing across states
LISTED = (State.WAITING, State.WAITING_CHILDREN, State.DELAYED, State.ACTIVE, State.FAILED, State.COMPLETED)


# ---- reading ----------------------------------------------------------------------------------


def list_jobs(
    engine: QueueWide, q: QueueState, state: State | None, limit: int, offset: int, asc: bool | None = None
) -> list[Job]:
    """One page of a queue's jobs in a state (or across states): O(log n + offset + limit) in memory.

    Each state lists in its own order (waiting as it will be handed out, delayed by due time, active, failed
    and waiting-children as they came, completed newest first); `asc` asks for oldest first (True) or newest first
    (False), bunqueue's `GetJobs asc`: a page read from the other end where the state's order is the other."""
    states = LISTED if state is None else (state,)
    if asc is None:
        pages = (_page(engine, q, s, offset + limit, 0) for s in states)
        return list(itertools.islice(itertools.chain.from_iterable(pages), offset, offset + limit))
    found: list[Job] = []
    for s in states if asc else reversed(states):
        if len(found) >= limit:
            break
        size = _size(engine, q, s)
        if offset >= size:
            offset -= size
            continue
        take = min(limit - len(found), size - offset)
        if (s is State.COMPLETED) != asc:  # the state's own order is the one asked for
            found += _page(engine, q, s, take, offset)
        else:  # read from the other end, reversed
            found += reversed(_page(engine, q, s, take, size - offset - take))
        offset = 0
    return found


def _size(engine: QueueWide, q: QueueState, state: State) -> int:
    match state:
        case State.WAITING:
            return q.waiting_count
        case State.DELAYED:
            return len(q.delayed)
        case State.ACTIVE:
            return len(q.active)
        case State.FAILED:
            return len(q.dlq)
        case State.COMPLETED:
            return q.completed
        case State.WAITING_CHILDREN:
            return len(q.dependents)
        case State.EXPIRED | State.REMOVED:
            return 0
        case _:
            assert_never(state)


def _page(engine: QueueWide, q: QueueState, state: State, limit: int, offset: int) -> list[Job]:
    stop = offset + limit
    match state:
        case State.WAITING:
            return list(q.waiting_in_order(offset, stop))
        case State.DELAYED:
            return [entry[2] for entry in q.delayed.islice(offset, stop)]
        case State.ACTIVE:
            return list(itertools.islice(q.active.values(), offset, stop))
        case State.FAILED:
            return list(itertools.islice(q.dlq.values(), offset, stop))
        case State.COMPLETED:
            engine.flush()
            return engine.index.completed_page(q.name, limit, offset)
        case State.WAITING_CHILDREN:
            return list(itertools.islice(q.dependents.values(), offset, stop))
        case State.EXPIRED | State.REMOVED:
            return []
        case _:
            assert_never(state)


# ---- bulk changes -----------------------------------------------------------------------------


def drain(engine: QueueWide, q: QueueState) -> int:
    """Remove every waiting and delayed job; active jobs are untouched."""
    jobs = [*q.every_waiting(), *(entry[2] for entry in q.delayed)]
    for job in jobs:
        engine.remove(job, event=False)
    engine.forget_removed(len(jobs))
    engine.emit_data("queue:drained", {"queue": q.name, "count": len(jobs)})
    return len(jobs)


def obliterate(engine: QueueWide, q: QueueState) -> None:
    """Everything of the queue goes: jobs in every state, logs, settings, DLQ and the name itself.
    Its active jobs' later acks and fails succeed without effect."""
    engine.index.bury(q.active)
    live = engine.index.forget_queue(q.name)
    for job in live:
        engine.logs.drop(job.id)
        job.state = State.REMOVED
        if job.dependents:  # waited for by jobs of other queues, which would wait forever
            job.failed_reason = REMOVED_UNFINISHED
            engine.flows.job_failed_for_good(job)
    for waiter in q.waiters:  # parked long polls end now, empty, instead of outliving the queue unanswered
        if not waiter.done:
            waiter.done = True
            waiter.respond(Jobs([]))
    engine.flush()
    engine.registry.forget(q)
    engine.forget_removed(len(live))
    engine.emit_data("queue:obliterated", {"queue": q.name})
    engine.emit_data("queue:removed", {"queue": q.name})


# a clean that names no state: the spec's `state` is "waiting or delayed", default all of those (as the
# reference); completed jobs and DLQ entries are cleaned only when named
UNFINISHED = (State.WAITING, State.DELAYED)


def clean(engine: QueueWide, q: QueueState, grace: int, state: State | None, limit: int) -> list[str]:
    """Remove up to `limit` jobs at least `grace` ms old (0: every one, this millisecond's too) in `state`
    (waiting and delayed when None), oldest first: finished jobs through SQLite's time indexes, waiting and
    delayed ones by a scan of the queue (no per-job time index is kept for a rare operation: it would cost
    every push time and memory)."""
    before = engine.clock() - grace + 1  # exclusive bound
    removed: list[str] = []
    for s in (state,) if state is not None else UNFINISHED:
        if len(removed) >= limit:
            break
        for job in _older(engine, q, s, before, limit - len(removed)):
            engine.remove(job, event=False)
            removed.append(job.id)
    engine.forget_removed(len(removed))
    engine.emit_data("queue:cleaned", {"queue": q.name, "state": state or "all", "count": len(removed)})
    return removed


def _older(engine: QueueWide, q: QueueState, state: State, before: int, limit: int) -> list[Job]:
    match state:
        case State.WAITING | State.DELAYED:
            jobs = q.every_waiting() if state == State.WAITING else (entry[2] for entry in q.delayed)
            old = (job for job in jobs if job.created_at < before)
            return heapq.nsmallest(limit, old, key=lambda job: (job.created_at, job.seq))
        case State.FAILED:
            dead = itertools.takewhile(lambda j: (j.dlq_entered_at or 0) < before, q.dlq.values())
            return list(itertools.islice(dead, limit))
        case State.COMPLETED:
            engine.flush()
            return engine.index.completed_before(q.name, before, limit)
        case State.ACTIVE | State.WAITING_CHILDREN | State.EXPIRED | State.REMOVED:
            return []
        case _:
            assert_never(state)


def promote_all(engine: QueueWide, q: QueueState, count: int | None) -> int:
    jobs = [entry[2] for entry in itertools.islice(q.delayed, count)]
    for job in jobs:
        engine.reschedule(job, engine.clock())
    return len(jobs)


def retry_completed(engine: QueueWide, q: QueueState, job_id: str | None) -> int:
    if job_id is not None:
        job = engine.index.find(job_id)
        jobs = [job] if job is not None and job.state == State.COMPLETED and job.queue == q.name else []
    else:
        engine.flush()
        jobs = engine.index.completed_all(q.name)
    for job in jobs:
        engine.index.unfinish(job.id)
        q.completed -= 1
        engine.requeue(q, job)
    return len(jobs)
