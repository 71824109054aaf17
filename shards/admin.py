"""Queue management inside a shard: the queue registry and settings, listing, drain, clean, obliterate,
bulk promote and retry, and the dead-letter queue's limits (max age, max entries, auto-retry)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, assert_never

import msgspec

from bunq.protocol import State
from shards.job import ACTIVE, COMPLETED, DELAYED, EXPIRED, FAILED, REMOVED, WAITING, Job, from_blob
from shards.queues import DlqConfig, QueueSettings, QueueState

if TYPE_CHECKING:
    from shards.engine import Engine

DLQ_SWEEP_MS = 60_000

_encode = msgspec.msgpack.Encoder().encode
_decode_settings = msgspec.msgpack.Decoder(QueueSettings).decode


# ---- registry ---------------------------------------------------------------------------------


def save(engine: Engine, q: QueueState) -> None:
    engine.journal.put_queue(q.name, engine.slot(q.name), _encode(q.settings))


def mark_known(engine: Engine, q: QueueState) -> None:
    """The first push to a queue: it is listed from now on, until obliterated."""
    q.known = True
    save(engine, q)
    engine.emit_data("queue:created", {"queue": q.name})


def load(engine: Engine) -> None:
    for name, blob in engine.store.queue_rows():
        q = engine.queue(name)
        q.known = True
        q.settings = _decode_settings(blob)
        if q.dlq:
            _arm_dlq_sweep(engine, q)
    engine.timers.at(engine.clock() + DLQ_SWEEP_MS, _expired_sweep_due, engine)


# ---- reading ----------------------------------------------------------------------------------


def list_jobs(engine: Engine, q: QueueState, state: State | None, limit: int, offset: int) -> list[Job]:
    """One page of a queue's jobs in a state (or across states): O(log n + offset + limit) in memory."""
    if state is None:
        pages = (_page(engine, q, s, offset + limit, 0) for s in (WAITING, DELAYED, ACTIVE, FAILED, COMPLETED))
        return list(itertools.islice(itertools.chain.from_iterable(pages), offset, offset + limit))
    return _page(engine, q, state, limit, offset)


def _page(engine: Engine, q: QueueState, state: State, limit: int, offset: int) -> list[Job]:
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
            return [from_blob(blob) for blob in engine.store.completed_page(q.name, limit, offset)]
        case State.WAITING_CHILDREN | State.EXPIRED | State.REMOVED:
            return []
        case _:
            assert_never(state)


# ---- bulk changes -----------------------------------------------------------------------------


def drain(engine: Engine, q: QueueState) -> int:
    """Remove every waiting and delayed job; active jobs are untouched."""
    jobs = [entry[2] for entry in itertools.chain(q.waiting, q.delayed)]
    jobs += [job for parked in q.parked.values() for job in parked]
    for job in jobs:
        engine.remove(job, event=False)
    engine.forget_removed(len(jobs))
    engine.emit_data("queue:drained", {"queue": q.name, "count": len(jobs)})
    return len(jobs)


def obliterate(engine: Engine, q: QueueState) -> None:
    """Everything of the queue goes: jobs in every state, logs, settings, DLQ and the name itself.
    Its active jobs' later acks and fails succeed without effect."""
    engine.index.bury(q.active)
    live = engine.index.forget_queue(q.name)
    for job in live:
        engine.logs.drop(job.id)
        job.state = REMOVED
    for waiter in q.waiters:
        waiter.done = True
    engine.flush()
    engine.store.delete_queue_rows(q.name)
    engine.journal.delete_queue(q.name)
    del engine.queues[q.name]
    engine.forget_removed(len(live))
    engine.emit_data("queue:obliterated", {"queue": q.name})
    engine.emit_data("queue:removed", {"queue": q.name})


CLEANABLE = (WAITING, DELAYED, COMPLETED, FAILED, EXPIRED)


def clean(engine: Engine, q: QueueState, grace: int, state: State | None, limit: int) -> list[str]:
    """Remove up to `limit` jobs at least `grace` ms old (0: every one, this millisecond's too), oldest
    first, through per-state time indexes."""
    before = engine.clock() - grace + 1  # exclusive bound
    removed: list[str] = []
    for s in (state,) if state is not None else CLEANABLE:
        if len(removed) >= limit:
            break
        for job in _older(engine, q, s, before, limit - len(removed)):
            engine.remove(job, event=False)
            removed.append(job.id)
    engine.forget_removed(len(removed))
    engine.emit_data("queue:cleaned", {"queue": q.name, "state": state or "all", "count": len(removed)})
    return removed


def _older(engine: Engine, q: QueueState, state: State, before: int, limit: int) -> list[Job]:
    match state:
        case State.WAITING | State.DELAYED:
            index = q.created[state]
            old = index.irange(maximum=(before,), inclusive=(True, False))
            return [entry[2] for entry in itertools.islice(old, limit)]
        case State.FAILED:
            dead = itertools.takewhile(lambda j: (j.dlq_entered_at or 0) < before, q.dlq.values())
            return list(itertools.islice(dead, limit))
        case State.COMPLETED | State.EXPIRED:
            engine.flush()
            return [from_blob(blob) for blob in engine.store.finished_before(q.name, state, before, limit)]
        case State.ACTIVE | State.WAITING_CHILDREN | State.REMOVED:
            return []
        case _:
            assert_never(state)


def promote_all(engine: Engine, q: QueueState, count: int | None) -> int:
    jobs = [entry[2] for entry in itertools.islice(q.delayed, count)]
    for job in jobs:
        engine.reschedule(job, engine.clock())
    return len(jobs)


def requeue(engine: Engine, q: QueueState, job: Job) -> None:
    """A finished job (completed or dead-lettered) runs again from scratch."""
    job.attempts = 0
    job.stall_count = 0
    job.started_at = None
    job.completed_at = None
    job.failed_reason = None
    job.result = None
    job.progress = 0
    job.dlq_entered_at = None
    job.dlq_reason = None
    job.run_at = engine.clock()
    engine.index.readd(job)
    engine.enqueue(job, q)


def retry_completed(engine: Engine, q: QueueState, job_id: str | None) -> int:
    if job_id is not None:
        job = engine.index.find(job_id)
        jobs = [job] if job is not None and job.state == COMPLETED and job.queue == q.name else []
    else:
        engine.flush()
        finished = engine.index.finished
        jobs = [finished.get(j.id, j) for j in map(from_blob, engine.store.completed_all(q.name))]
    for job in jobs:
        engine.index.unfinish(job.id)
        q.completed -= 1
        requeue(engine, q, job)
    return len(jobs)


def retry_dlq(engine: Engine, q: QueueState, job_id: str | None) -> int:
    ids = [job_id] if job_id is not None else list(q.dlq)
    count = 0
    for i in ids:
        job = q.dlq.pop(i, None)
        if job is None:
            continue
        requeue(engine, q, job)
        count += 1
        if job_id is not None:
            engine.emit("dlq:retried", job)
    if job_id is None:
        engine.emit_data("dlq:retry-all", {"queue": q.name, "count": count})
    return count


def purge_dlq(engine: Engine, q: QueueState) -> int:
    jobs = list(q.dlq.values())
    for job in jobs:
        engine.remove(job, event=False)
    engine.forget_removed(len(jobs))
    engine.emit_data("dlq:purged", {"queue": q.name, "count": len(jobs)})
    return len(jobs)


# ---- the DLQ's limits -------------------------------------------------------------------------


def after_dead_letter(engine: Engine, q: QueueState, job: Job) -> None:
    """Enforce maxEntries (evict the oldest), arm the max-age sweep and, if enabled, an auto-retry."""
    config = q.settings.dlq
    while len(q.dlq) > config.max_entries:
        oldest = next(iter(q.dlq.values()))
        engine.remove(oldest, event=False)
    _arm_dlq_sweep(engine, q)
    if config.auto_retry and job.auto_retries < config.max_auto_retries:
        engine.timers.at(engine.clock() + config.auto_retry_interval, _auto_retry_due, (engine, job))


def _auto_retry_due(arg: tuple[Engine, Job]) -> None:
    engine, job = arg
    q = engine.queues.get(job.queue)
    if q is None or q.dlq.get(job.id) is not job or not q.settings.dlq.auto_retry:
        return
    job.auto_retries += 1
    retry_dlq(engine, q, job.id)


def _arm_dlq_sweep(engine: Engine, q: QueueState) -> None:
    if q.dlq_sweep_armed:
        return
    q.dlq_sweep_armed = True
    engine.timers.at(engine.clock() + min(DLQ_SWEEP_MS, q.settings.dlq.max_age), _dlq_sweep_due, (engine, q))


def _dlq_sweep_due(arg: tuple[Engine, QueueState]) -> None:
    engine, q = arg
    q.dlq_sweep_armed = False
    if engine.queues.get(q.name) is not q:
        return
    before = engine.clock() - q.settings.dlq.max_age
    for job in [j for j in itertools.takewhile(lambda j: (j.dlq_entered_at or 0) < before, q.dlq.values())]:
        engine.remove(job, event=False)
    if q.dlq:
        _arm_dlq_sweep(engine, q)


def _expired_sweep_due(engine: Engine) -> None:
    """Expired jobs are kept, like DLQ entries, for their queue's DLQ `maxAge`, then dropped."""
    now = engine.clock()
    max_age = {name: q.settings.dlq.max_age for name, q in engine.queues.items()}
    default = DlqConfig().max_age
    old = [
        job.id
        for job in engine.index.finished.values()
        if job.state is EXPIRED and job.created_at < now - max_age.get(job.queue, default)
    ]
    engine.index.forget_finished(old)
    engine.flush()
    for name, age in max_age.items():
        engine.store.delete_expired_before(name, now - age)
    engine.timers.at(now + DLQ_SWEEP_MS, _expired_sweep_due, engine)
