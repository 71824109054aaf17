"""The push of jobs that carry `PushOptions` (an `AddJobs` the front marked so): a flow parent, a window on
the unique key and what a duplicate does, a debounce key. A plain push never comes here.

What the reference does, kept: a push whose `jobId` names a job returns that job; then, when a live job
holds the `uniqueKey`, `dedup.replace` replaces it (one not started is removed, a running one keeps
running and lets go of the key), `dedup.extend` with a `ttl` moves the holder's window and returns the
holder (refused, `Duplicate unique_key (extended TTL)`, when the holder is no longer waiting or delayed),
and otherwise the holder is returned. A debounce key replaces the last job pushed with it within its
window. Every refusal is found before anything changes, so a bulk push is all or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from bunq import protocol as p
from bunq.errors import DISK_FULL, BadRequest, Unavailable
from shards.flows import adopt
from shards.handlers import jobs
from shards.job import ACTIVE, DELAYED, WAITING, WAITING_CHILDREN, Hold, Job

if TYPE_CHECKING:
    from shards.dedup import Dedup
    from shards.index import JobIndex
    from shards.queues import QueueState
    from shards.waiters import Respond

EXTENDED = "Duplicate unique_key (extended TTL)"


class OptionsPath(Protocol):
    """What the push with options uses of the engine."""

    @property
    def index(self) -> JobIndex: ...

    @property
    def jobs(self) -> Mapping[str, Job]: ...

    @property
    def dedup(self) -> Dedup: ...

    @property
    def disk_full(self) -> bool: ...

    def clock(self) -> int: ...

    def slot(self, queue: str) -> int: ...

    def queue(self, name: str) -> QueueState: ...

    def admit(self, job: Job, q: QueueState) -> None: ...

    def remove(self, job: Job, *, event: bool = True, parent_policy: p.FlowPolicy | None = None) -> None: ...

    def after_next_commit(self, respond: Respond, reply: p.Reply) -> None: ...


def add_jobs(engine: OptionsPath, cmd: p.AddJobs, respond: Respond) -> p.Reply | None:
    if engine.disk_full and any(spec.durable for spec in cmd.jobs):
        raise Unavailable(DISK_FULL)
    _refusals(engine, cmd)
    q = engine.queue(cmd.queue)
    now = engine.clock()
    slot = engine.slot(cmd.queue)
    ids = [_add(engine, q, slot, spec, now) for spec in cmd.jobs]
    reply = p.Ids(ids)
    if any(spec.durable for spec in cmd.jobs):
        engine.after_next_commit(respond, reply)
        return None
    return reply


def _holder(engine: OptionsPath, queue: str, key: str | None) -> Job | None:
    holder = None if key is None else engine.index.holder(queue, key)
    return None if holder is None else engine.jobs.get(holder)


def _add(engine: OptionsPath, q: QueueState, slot: int, spec: p.NewJob, now: int) -> str:
    opts = spec.options
    if opts is None:
        existing = jobs.existing(engine.index, q.name, spec)
        if existing is not None:
            return existing
        job = jobs.new_job(q.name, slot, spec, now)
        engine.admit(job, q)
        return job.id
    if spec.job_id is not None and (found := engine.index.find(spec.job_id)) is not None:
        return found.id
    replaced: list[Job] = []
    holder = _holder(engine, q.name, spec.unique_key)
    if holder is not None:
        if not opts.dedup_replace:
            if opts.dedup_extend and opts.dedup_ttl is not None:
                engine.dedup.extend(holder, now + opts.dedup_ttl)
            return holder.id
        if holder.state == ACTIVE:
            engine.index.free_unique(holder)  # it runs on; the new job takes the key
        else:
            replaced.append(holder)
    if opts.debounce_id is not None:
        last = engine.dedup.debounced(q.name, opts.debounce_id)
        if last is not None and last not in replaced:
            replaced.append(last)
    for old in replaced:
        engine.remove(old)
    return _create(engine, q, slot, spec, opts, now)


def _create(engine: OptionsPath, q: QueueState, slot: int, spec: p.NewJob, opts: p.PushOptions, now: int) -> str:
    job = jobs.new_job(q.name, slot, spec, now)
    if opts.parent_id is not None:
        adopt(job, opts.parent_id, opts.parent_slot)
        job.flow_policy = opts.policy
    dedup_until = now + opts.dedup_ttl if opts.dedup_ttl is not None and spec.unique_key is not None else None
    if dedup_until is not None or opts.debounce_id is not None:
        debounce_until = now + opts.debounce_ttl if opts.debounce_ttl is not None else None
        job.hold = Hold(dedup_until, opts.debounce_id, debounce_until)
    engine.admit(job, q)
    engine.dedup.arm(job)
    return job.id


def _refusals(engine: OptionsPath, cmd: p.AddJobs) -> None:
    """Refuse the push before anything is made: a replace of a job other jobs wait for, an extend whose
    holder has started. Keys the push's own earlier jobs take count as theirs."""
    awaited = {dep for spec in cmd.jobs for dep in spec.depends_on}
    claimed: dict[str, p.NewJob] = {}  # unique key → the job of this push that takes it
    for spec in cmd.jobs:
        key = spec.unique_key
        if key is None or (spec.job_id is not None and engine.index.find(spec.job_id) is not None):
            continue
        earlier = claimed.get(key)
        holder = None if earlier is not None else _holder(engine, cmd.queue, key)
        if earlier is None and holder is None:
            claimed[key] = spec
            continue
        opts = spec.options
        if opts is None:
            continue
        if earlier is not None:
            holder_id = earlier.job_id or earlier.id or ""
            state = WAITING_CHILDREN if earlier.depends_on else WAITING
            depended = holder_id in awaited
        else:
            assert holder is not None
            holder_id, state = holder.id, holder.state
            depended = bool(holder.dependents) or holder_id in spec.depends_on
        if opts.dedup_replace:
            if depended:
                raise BadRequest(f"Cannot replace deduplicated job {holder_id} because live jobs depend on it")
            claimed[key] = spec
        elif opts.dedup_extend and opts.dedup_ttl is not None and state not in (WAITING, DELAYED):
            raise BadRequest(EXTENDED)
