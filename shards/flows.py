"""Job dependencies across shards (`dependsOn`) and repeating jobs (`repeat`).

A job with dependencies waits in `waiting-children`. Its shard asks each dependency's shard to watch
the dependency (`WatchJob`); that shard answers with the state now (already completed or failed) or
remembers the dependent in the job's record. When the dependency completes or fails for good, its
shard tells the dependent's shard (`ResolveDependency`) through a persisted outbox that is retried
until acknowledged, and the waiting side re-sends its watches periodically and on start, so the path
survives a restart of either side. Resolution is idempotent.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import TYPE_CHECKING

import msgspec
from croniter import croniter

from bunq import protocol as p
from bunq.routing import new_job_id, shard_of_slot
from shards.job import COMPLETED, EXPIRED, FAILED, WAITING_CHILDREN, Job

if TYPE_CHECKING:
    from shards.engine import Engine

RETRY_MS = 2_000
REWATCH_MS = 30_000


class Repeat(msgspec.Struct):
    every: int | None = None
    limit: int | None = None
    cron: str | None = None
    pattern: str | None = None
    tz: str | None = None


_repeat = msgspec.json.Decoder(Repeat)


# ---- the waiting side -------------------------------------------------------------------------


def watch_dependencies(engine: Engine, job: Job) -> None:
    for dep_id in list(job.pending_deps):
        _watch(engine, job, dep_id)
    engine.timers.at(engine.clock() + REWATCH_MS, _rewatch_due, (engine, job))


def _watch(engine: Engine, job: Job, dep_id: str) -> None:
    command = p.WatchJob(dep_id, job.id, job.slot)
    parent_id = job.id

    def watched(reply: p.Reply) -> None:
        if isinstance(reply, p.Watched) and reply.state in (COMPLETED, FAILED):
            outcome = p.ResolveDependency(parent_id, dep_id, reply.state == COMPLETED, reply.result, reply.error)
            resolve(engine, outcome)

    for shard in engine.shards_for_id(dep_id):
        engine.send(shard, command, watched)


def _rewatch_due(arg: tuple[Engine, Job]) -> None:
    engine, job = arg
    if job.state == WAITING_CHILDREN and engine.jobs.get(job.id) is job:
        watch_dependencies(engine, job)


def resolve(engine: Engine, cmd: p.ResolveDependency) -> None:
    """Dependency `dep_id` of `parent_id` finished; a no-op when already applied."""
    job = engine.jobs.get(cmd.parent_id)
    if job is None or job.state != WAITING_CHILDREN or cmd.dep_id not in job.pending_deps:
        return
    q = engine.queue(job.queue)
    job.pending_deps = [d for d in job.pending_deps if d != cmd.dep_id]
    if not cmd.completed:
        engine.unschedule(job, q)
        job.failed_reason = f"Dependency {cmd.dep_id} failed: {cmd.error or 'failed'}"
        engine.emit_data(
            "flow:failed",
            {"parentJobId": job.id, "failedChildId": cmd.dep_id, "queue": job.queue, "error": job.failed_reason},
        )
        engine.dead_letter(job, q, p.DlqReason.DEPENDENCY_FAILED)
        return
    job.children = {**job.children, cmd.dep_id: cmd.result}
    if job.pending_deps:
        engine.journal.put(job)
        return
    q.waiting_children -= 1
    engine.emit_data("flow:completed", {"parentJobId": job.id, "queue": job.queue, "childrenCount": len(job.children)})
    engine.enqueue(job, q)


# ---- the dependency's side --------------------------------------------------------------------


def watch(engine: Engine, cmd: p.WatchJob) -> p.Watched:
    job = engine.index.find(cmd.id)
    if job is None:
        if cmd.id in engine.index.results:
            return p.Watched(COMPLETED, engine.index.results[cmd.id])
        return p.Watched("unknown")
    if job.state == COMPLETED:
        return p.Watched(COMPLETED, job.result)
    if job.state in (FAILED, EXPIRED):
        return p.Watched(FAILED, error=job.failed_reason)
    if (cmd.parent_id, cmd.parent_slot) not in job.dependents:
        job.dependents = [*job.dependents, (cmd.parent_id, cmd.parent_slot)]
        engine.journal.put(job)
    return p.Watched("watching")


def job_completed(engine: Engine, job: Job, result: bytes | None) -> None:
    for parent_id, slot in job.dependents:
        _notify(engine, slot, p.ResolveDependency(parent_id, job.id, True, result))


def job_failed_for_good(engine: Engine, job: Job) -> None:
    for parent_id, slot in job.dependents:
        _notify(engine, slot, p.ResolveDependency(parent_id, job.id, False, error=job.failed_reason))


def _notify(engine: Engine, slot: int, cmd: p.ResolveDependency) -> None:
    shard = shard_of_slot(slot, engine.shards)
    if shard == engine.shard:
        resolve(engine, cmd)
        return
    key = (cmd.parent_id, cmd.dep_id)
    engine.outbox[key] = (slot, cmd)
    engine.journal.put_outbox(key, slot, cmd)
    _deliver(engine, key)


def _deliver(engine: Engine, key: tuple[str, str]) -> None:
    entry = engine.outbox.get(key)
    if entry is None:
        return
    slot, cmd = entry
    engine.send(shard_of_slot(slot, engine.shards), cmd, lambda reply: _delivered(engine, key, reply))
    engine.timers.at(engine.clock() + RETRY_MS, _redeliver_due, (engine, key))


def _delivered(engine: Engine, key: tuple[str, str], reply: p.Reply) -> None:
    if isinstance(reply, p.Done) and engine.outbox.pop(key, None) is not None:
        engine.journal.delete_outbox(key)


def _redeliver_due(arg: tuple[Engine, tuple[str, str]]) -> None:
    engine, key = arg
    _deliver(engine, key)


def load_outbox(engine: Engine) -> None:
    for parent_id, dep_id, slot, blob in engine.store.outbox_rows():
        cmd = msgspec.msgpack.decode(blob, type=p.ResolveDependency)
        engine.outbox[(parent_id, dep_id)] = (slot, cmd)
        _deliver(engine, (parent_id, dep_id))


# ---- repeat -----------------------------------------------------------------------------------


def parse_repeat(raw: bytes) -> Repeat:
    return _repeat.decode(raw)


def next_cron(expression: str, tz: str | None, now_ms: int) -> int:
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    start = datetime.datetime.fromtimestamp(now_ms / 1000, zone)
    following: datetime.datetime = croniter(expression, start).get_next(datetime.datetime)
    return int(following.timestamp() * 1000)


def first_run_at(job: Job, now: int) -> int:
    """A cron-repeating job first runs at the next time its expression names (unless delayed further)."""
    if job.repeat is None:
        return job.run_at
    repeat = parse_repeat(job.repeat)
    expression = repeat.cron or repeat.pattern
    if expression is None:
        return job.run_at
    return max(job.run_at, next_cron(expression, repeat.tz, now))


def repeat_after_completion(engine: Engine, job: Job) -> None:
    """Push the job's next run: `every` ms after this completion, or at the next cron time, up to `limit` runs."""
    if job.repeat is None:
        return
    repeat = parse_repeat(job.repeat)
    runs = job.repeat_count + 1
    if repeat.limit is not None and runs >= repeat.limit:
        return
    now = engine.clock()
    expression = repeat.cron or repeat.pattern
    if expression is not None:
        run_at = next_cron(expression, repeat.tz, now)
    elif repeat.every:
        run_at = now + repeat.every
    else:
        return
    q = engine.queue(job.queue)
    nxt = msgspec.structs.replace(
        job,
        id=new_job_id(job.slot),
        custom_id=None,
        created_at=now,
        run_at=run_at,
        attempts=0,
        started_at=None,
        completed_at=None,
        progress=0,
        progress_message=None,
        failed_reason=None,
        result=None,
        token=None,
        owner=None,
        lock_expires_at=None,
        stall_count=0,
        last_heartbeat=None,
        dependents=[],
        pending_deps=[],
        children={},
        repeat_count=runs,
        seq=engine.next_key(job.lifo),
    )
    engine.admit(nxt, q)
