"""Handlers for flows (bunqueue's FlowProducer): an atomic flow's jobs on this shard, parent links made
and undone later, a parent's kept child failures, and an active job that waits for children again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from bunq import protocol as p
from bunq.errors import DISK_FULL, BadRequest, NotFound, Unavailable
from bunq.protocol import FlowPolicy, State
from shards.flows import adopt
from shards.handlers.jobs import new_job
from shards.job import Job, render

if TYPE_CHECKING:
    from shards.flows import Flows
    from shards.index import JobIndex
    from shards.journal import Journal
    from shards.leases import Leases
    from shards.queues import QueueState
    from shards.waiters import Respond

NOT_ACTIVE = "Job is not active"
# as many as a job's `dependsOn` may name: a parent's record (its children, their results) is written again
# as each child finishes, so its size bounds what every completion of its children costs
MAX_CHILDREN = 1000


class FlowOperations(Protocol):
    """What the flow handlers use of the engine."""

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
    def disk_full(self) -> bool: ...

    def clock(self) -> int: ...

    def slot(self, queue: str) -> int: ...

    def queue(self, name: str) -> QueueState: ...

    def admit(self, job: Job, q: QueueState) -> None: ...

    def remove(self, job: Job, *, event: bool = True, parent_policy: FlowPolicy | None = None) -> None: ...

    def end_lease(self, job: Job) -> QueueState: ...

    def after_next_commit(self, respond: Respond, reply: p.Reply) -> None: ...


def _held(engine: FlowOperations, job_id: str) -> bool:
    return job_id in engine.index.results or engine.index.find(job_id) is not None


def add_flow(engine: FlowOperations, cmd: p.AddFlow, respond: Respond) -> p.Reply | None:
    """Every id is checked before anything is created, so the flow's part here is all or nothing; the jobs
    come dependencies first, so a dependent's watch finds its dependencies already here."""
    for item in cmd.jobs:
        job_id = item.job.job_id or ""
        if _held(engine, job_id):
            raise BadRequest(f"Flow job {job_id} already exists")
    durable = any(item.job.durable for item in cmd.jobs)
    if durable and engine.disk_full:
        raise Unavailable(DISK_FULL)
    now = engine.clock()
    created = []
    for item in cmd.jobs:
        job = new_job(item.queue, engine.slot(item.queue), item.job, now)
        job.parent_id = item.parent_id
        job.children_ids = item.children_ids
        job.flow_policy = item.policy
        job.dependents = item.dependents
        engine.admit(job, engine.queue(item.queue))
        created.append(job)
    reply = p.Jobs([render(job) for job in created])
    if durable:
        engine.after_next_commit(respond, reply)
        return None
    return reply


def find_jobs(engine: FlowOperations, cmd: p.FindJobs, respond: Respond) -> p.Reply:
    return p.Ids([job_id for job_id in cmd.ids if _held(engine, job_id)])


def link_child(engine: FlowOperations, cmd: p.LinkChild, respond: Respond) -> p.Reply:
    job = engine.jobs.get(cmd.parent_id)
    if job is None or job.state not in (State.WAITING, State.DELAYED, State.WAITING_CHILDREN):
        if job is None and not _held(engine, cmd.parent_id):
            raise NotFound(f"Parent job not found: {cmd.parent_id}")
        raise BadRequest(f"Parent job {cmd.parent_id} is not linkable")
    if len(job.children_ids) >= MAX_CHILDREN and cmd.child_id not in job.children_ids:
        raise BadRequest(f"Parent job {cmd.parent_id} has too many children (max {MAX_CHILDREN})")
    engine.flows.link_child(job, cmd.child_id)
    return p.Done()


def set_parent(engine: FlowOperations, cmd: p.SetParent, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.child_id)
    if job is None:
        raise NotFound(f"Child job not found: {cmd.child_id}")
    adopt(job, cmd.parent_id, cmd.parent_slot)
    engine.journal.put(job)
    return p.Done()


def detach_child(engine: FlowOperations, cmd: p.DetachChild, respond: Respond) -> p.Reply:
    job = engine.jobs.get(cmd.parent_id)
    return p.Count(1 if job is not None and engine.flows.detach_child(job, cmd.child_id) else 0)


def clear_parent(engine: FlowOperations, cmd: p.ClearParent, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.child_id)
    if job is None or job.parent_id != cmd.parent_id:
        return p.Done()
    job.parent_id = None
    job.flow_policy = None
    job.dependents = tuple(d for d in job.dependents if d[0] != cmd.parent_id)
    engine.journal.put(job)
    return p.Done()


def remove_unprocessed(engine: FlowOperations, cmd: p.RemoveUnprocessed, respond: Respond) -> p.Reply:
    """Active and finished children stay as they are, as the reference keeps them."""
    job = engine.jobs.get(cmd.id)
    if job is None or job.parent_id != cmd.parent_id:
        return p.Count(0)
    if job.state not in (State.WAITING, State.DELAYED, State.WAITING_CHILDREN):
        return p.Count(0)
    engine.remove(job, parent_policy=FlowPolicy.REMOVE)  # removed unprocessed: its parent stops waiting for it
    return p.Count(1)


def get_flow_failures(engine: FlowOperations, cmd: p.GetFlowFailures, respond: Respond) -> p.Reply:
    job = engine.index.find(cmd.id)
    if job is None:
        raise NotFound("Job not found")
    kept = job.ignored_failures if cmd.ignored else job.failed_children
    return p.Failures(dict(kept or {}))


def move_to_waiting_children(engine: FlowOperations, cmd: p.MoveToWaitingChildren, respond: Respond) -> p.Reply:
    """The lease ends without an outcome (no attempt charged); the job waits for the children it has and
    those linked to it later (UpdateParent), and is pulled again once none is left to wait for."""
    current = engine.jobs.get(cmd.id)
    if current is None or current.state != State.ACTIVE:
        raise (NotFound if engine.index.find(cmd.id) is None else BadRequest)(NOT_ACTIVE)
    job = engine.leases.leased(cmd.id, cmd.token)
    engine.end_lease(job)
    job.started_at = None
    engine.flows.wait_for_children(job)
    return p.Done()
