"""Start-up: rebuild a shard's memory from its storage. Jobs that were active when the shard stopped are
charged an attempt and requeued (or dead-lettered when out of attempts); waiting jobs keep their order;
jobs waiting for dependencies re-ask for them; undelivered dependency outcomes are sent again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shards import admin, flows
from shards.job import ACTIVE, DELAYED, FAILED, WAITING, WAITING_CHILDREN, Job, from_blob

if TYPE_CHECKING:
    from shards.engine import Engine


def recover(engine: Engine) -> None:
    admin.load(engine)
    for queue, count in engine.store.completed_counts().items():
        engine.queue(queue).completed = count
    live = [from_blob(blob) for blob in engine.store.live_blobs()]
    live.sort(key=lambda j: abs(j.seq))
    engine.seq = max((abs(j.seq) for j in live), default=0)
    for job in live:
        restore(engine, job)
    engine.logs.load(engine.store)
    flows.load_outbox(engine)
    engine.journal.flush()


def restore(engine: Engine, job: Job) -> None:
    q = engine.queue(job.queue)
    engine.jobs[job.id] = job
    if job.unique_key is not None and job.state != FAILED:
        engine.unique[(job.queue, job.unique_key)] = job.id
    if job.ttl is not None and job.state != FAILED:
        engine.timers.at(job.created_at + job.ttl, engine.ttl_due, job)
    if job.state == FAILED:
        q.dlq[job.id] = job
    elif job.state == ACTIVE:
        q.active[job.id] = job
        if job.group_id is not None:
            q.groups_active[job.group_id] = q.groups_active.get(job.group_id, 0) + 1
        engine.fail(job, "Job was active when the shard stopped", "stalled", backoff=False)
    elif job.state == WAITING_CHILDREN:
        q.waiting_children += 1
        flows.watch_dependencies(engine, job)
    elif job.state == DELAYED:
        engine.enqueue(job, q)
    else:
        job.state = WAITING
        q.push(job)
