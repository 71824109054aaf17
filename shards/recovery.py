"""Start-up: rebuild a shard's memory from its storage. Jobs that were active when the shard stopped are
charged an attempt and requeued (or dead-lettered when out of attempts); waiting jobs keep their order;
jobs waiting for dependencies re-ask for them; undelivered dependency outcomes are sent again. Completed
jobs stay in storage and are never live again; the expired jobs earlier versions kept are dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from bunq.protocol import DlqReason, State
from shards.job import Job, from_blob

if TYPE_CHECKING:
    from shards.engine import Engine


def recover(engine: Engine) -> None:
    engine.registry.load()
    engine.store.delete_expired()
    for queue, count in engine.store.completed_counts().items():
        engine.queue(queue).completed = count
    live = [from_blob(blob) for blob in engine.store.live_blobs()]
    live.sort(key=lambda j: abs(j.seq))
    engine.resume_keys(max((abs(j.seq) for j in live), default=0))
    for job in live:
        restore(engine, job)
    engine.dlq.resume()
    engine.logs.load(engine.store)
    engine.flows.load_outbox(engine.store)
    engine.journal.flush()


def restore(engine: Engine, job: Job) -> None:
    """Put one stored job back where its state says; only live states are loaded (`live_blobs`)."""
    q = engine.queue(job.queue)
    match job.state:
        case State.COMPLETED | State.EXPIRED | State.REMOVED:
            return  # finished: read from storage on demand, never live again
        case State.FAILED:
            engine.index.keep_dead(job)
            q.dlq[job.id] = job
            return
        case State.ACTIVE | State.WAITING_CHILDREN | State.DELAYED | State.WAITING:
            engine.index.add(job)
            if job.ttl is not None:
                engine.timers.at(job.created_at + job.ttl, engine.ttl_due, job)
            if job.hold is not None:
                engine.dedup.restore(job)
        case _:
            assert_never(job.state)
    match job.state:
        case State.ACTIVE:
            q.active[job.id] = job
            if job.group_id is not None:
                q.groups_active[job.group_id] = q.groups_active.get(job.group_id, 0) + 1
            engine.fail(job, "Job was active when the shard stopped", DlqReason.STALLED, backoff=False)
        case State.WAITING_CHILDREN:
            q.dependents[job.id] = job
            engine.flows.watch_dependencies(job)
        case State.DELAYED:
            engine.enqueue(job, q)
        case State.WAITING:
            q.push(job)
