"""Job dependencies across shards (`dependsOn`) and repeating jobs (`repeat`).

A job with dependencies waits in `waiting-children`. Its shard asks each dependency's shard to watch
the dependency (`WatchJob`); that shard answers with the state now (already completed or failed) or
remembers the dependent in the job's record. When the dependency completes or fails for good, its
shard tells the dependent's shard (`ResolveDependency`) through a persisted outbox that is retried
until acknowledged, and the waiting side re-sends its watches periodically and on start, so the path
survives a restart of either side. Resolution is idempotent. `Flows` owns that outbox; its timers call
its own methods.

A flow child (bunqueue's FlowProducer, `parent_id`) is such a dependency of its parent, and its failure
carries its `FlowPolicy` on the same path: the parent goes to the DLQ (the default), stops waiting for it
(`remove`, `ignore`, and a child removed before it ran), or runs at once (`continue`). Links made later
(UpdateParent, RemoveChildDependency) change the parent on its shard and the child on its own; a link left
behind on one side is harmless, since resolving a dependency the parent no longer waits for does nothing.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any, Protocol, assert_never

import msgspec

from bunq import protocol as p
from bunq.catalogue import EventName
from bunq.protocol import FlowPolicy, State
from bunq.routing import new_job_id, shard_of_slot, shards_for_id
from shards.index import JobIndex
from shards.job import Job
from shards.journal import Journal
from shards.queues import QueueState
from shards.store import Store
from shards.timers import Timers

RETRY_MS = 2_000
REWATCH_MS = 30_000


class Repeat(msgspec.Struct):
    every: int | None = None
    limit: int | None = None
    cron: str | None = None
    pattern: str | None = None
    tz: str | None = None


_repeat = msgspec.json.Decoder(Repeat)


# ---- repeat -----------------------------------------------------------------------------------


def parse_repeat(raw: bytes) -> Repeat:
    return _repeat.decode(raw)


def next_cron(expression: str, tz: str | None, now_ms: int) -> int:
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    start = datetime.datetime.fromtimestamp(now_ms / 1000, zone)
    from croniter import croniter  # when first needed (see bunq.schedules)

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


Key = tuple[str, str]  # (parent id, dependency id)


def adopt(job: Job, parent_id: str, parent_slot: int) -> None:
    """`job` becomes a child of `parent_id` (UpdateParent, or a push with `parentId`): its outcome goes there."""
    job.parent_id = parent_id
    if (parent_id, parent_slot) not in job.dependents:
        job.dependents = (*job.dependents, (parent_id, parent_slot))


class Transitions(Protocol):
    """What flows ask of the engine: the job transitions, events and the link to other shards."""

    def queue(self, name: str) -> QueueState: ...

    def admit(self, job: Job, q: QueueState) -> None: ...

    def enqueue(self, job: Job, q: QueueState) -> None: ...

    def dead_letter(self, job: Job, q: QueueState, reason: p.DlqReason) -> None: ...

    def next_key(self, lifo: bool) -> int: ...

    def send(self, shard: int, command: p.Command, on_reply: Callable[[p.Reply], None]) -> None: ...

    def emit_data(self, name: EventName, data: dict[str, Any]) -> None: ...


class Flows:
    def __init__(
        self,
        shard: int,
        shards: int,
        slots: int,
        clock: Callable[[], int],
        timers: Timers,
        journal: Journal,
        index: JobIndex,
        engine: Transitions,
    ) -> None:
        self.shard = shard
        self.shards = shards
        self.slots = slots
        self.clock = clock
        self.timers = timers
        self.journal = journal
        self.index = index
        self.jobs: Mapping[str, Job] = index.jobs
        self.engine = engine
        self.outbox: dict[Key, tuple[int, p.ResolveDependency]] = {}

    # ---- the waiting side -----------------------------------------------------------------------

    def watch_dependencies(self, job: Job) -> None:
        for dep_id in list(job.pending_deps):
            self._watch(job, dep_id)
        self.timers.at(self.clock() + REWATCH_MS, self._rewatch_due, job)

    def _watch(self, job: Job, dep_id: str) -> None:
        command = p.WatchJob(dep_id, job.id, job.slot)
        parent_id = job.id

        def watched(reply: p.Reply) -> None:
            if isinstance(reply, p.Watched) and reply.state in (State.COMPLETED, State.FAILED):
                completed = reply.state == State.COMPLETED
                outcome = p.ResolveDependency(
                    parent_id, dep_id, completed, reply.result, reply.error, reply.policy, reply.queue
                )
                self.resolve(outcome)

        for shard in shards_for_id(dep_id, self.slots, self.shards):
            self.engine.send(shard, command, watched)

    def _rewatch_due(self, job: Job) -> None:
        if job.state == State.WAITING_CHILDREN and self.jobs.get(job.id) is job:
            self.watch_dependencies(job)

    def resolve(self, cmd: p.ResolveDependency) -> None:
        """Dependency `dep_id` of `parent_id` finished; a no-op when already applied."""
        job = self.jobs.get(cmd.parent_id)
        if job is None or job.state != State.WAITING_CHILDREN or cmd.dep_id not in job.pending_deps:
            return
        job.pending_deps = tuple(d for d in job.pending_deps if d != cmd.dep_id)
        if cmd.completed:
            job.children = {**(job.children or {}), cmd.dep_id: cmd.result}
            self._go_on_when_done(job)
            return
        key = f"{cmd.dep_queue}:{cmd.dep_id}"
        error = cmd.error or "unknown error"
        match cmd.policy:
            case None | FlowPolicy.FAIL:
                self._fail_parent(job, cmd)
            case FlowPolicy.REMOVE:
                self._go_on_when_done(job)
            case FlowPolicy.IGNORE:
                job.ignored_failures = {**(job.ignored_failures or {}), key: error}
                self._go_on_when_done(job)
            case FlowPolicy.CONTINUE:
                job.failed_children = {**(job.failed_children or {}), key: error}
                job.pending_deps = ()
                self._go_on_when_done(job)
            case _:
                assert_never(cmd.policy)

    def _fail_parent(self, job: Job, cmd: p.ResolveDependency) -> None:
        engine = self.engine
        q = engine.queue(job.queue)
        q.unschedule(job)
        job.failed_reason = f"Dependency {cmd.dep_id} failed: {cmd.error or 'failed'}"
        engine.emit_data(
            "flow:failed",
            {"parentJobId": job.id, "failedChildId": cmd.dep_id, "queue": job.queue, "error": job.failed_reason},
        )
        engine.dead_letter(job, q, p.DlqReason.DEPENDENCY_FAILED)

    def _go_on_when_done(self, job: Job) -> None:
        """The job waits for children: it becomes waiting (or delayed) once none is left to wait for."""
        if job.pending_deps:
            self.journal.put(job)
            return
        q = self.engine.queue(job.queue)
        q.dependents.pop(job.id, None)
        self.engine.emit_data(
            "flow:completed", {"parentJobId": job.id, "queue": job.queue, "childrenCount": len(job.children or ())}
        )
        self.engine.enqueue(job, q)

    def wait_for_children(self, job: Job) -> None:
        """A job that has left its queue (or its lease) waits for children: those pending, or any linked later."""
        job.state = State.WAITING_CHILDREN
        self.engine.queue(job.queue).dependents[job.id] = job
        self.journal.put(job)
        self.watch_dependencies(job)

    def link_child(self, job: Job, child_id: str) -> None:
        """`child_id` becomes a child `job` waits for (if it has finished, the watch answers so at once)."""
        if child_id not in job.children_ids:
            job.children_ids = (*job.children_ids, child_id)
        if child_id not in job.pending_deps:
            job.pending_deps = (*job.pending_deps, child_id)
        if job.state != State.WAITING_CHILDREN:
            self.engine.queue(job.queue).unschedule(job)
            self.wait_for_children(job)
            return
        self.journal.put(job)
        self._watch(job, child_id)

    def detach_child(self, job: Job, child_id: str) -> bool:
        """`job` stops waiting for `child_id`, which is no longer its child; False when it was not waiting for it."""
        if job.state != State.WAITING_CHILDREN or child_id not in job.pending_deps:
            return False
        job.children_ids = tuple(c for c in job.children_ids if c != child_id)
        job.pending_deps = tuple(d for d in job.pending_deps if d != child_id)
        self._go_on_when_done(job)
        return True

    # ---- the dependency's side ------------------------------------------------------------------

    def watch(self, cmd: p.WatchJob) -> p.Watched:
        job = self.index.find(cmd.id)
        if job is None:
            if cmd.id in self.index.results:
                return p.Watched(State.COMPLETED, self.index.results[cmd.id])
            return p.Watched("unknown")
        match job.state:
            case p.State.COMPLETED:
                return p.Watched(State.COMPLETED, job.result)
            case p.State.FAILED | p.State.EXPIRED:
                policy = job.flow_policy if job.parent_id == cmd.parent_id else None
                return p.Watched(State.FAILED, error=job.failed_reason, policy=policy, queue=job.queue)
            case p.State.WAITING | p.State.DELAYED | p.State.ACTIVE | p.State.WAITING_CHILDREN | p.State.REMOVED:
                if (cmd.parent_id, cmd.parent_slot) not in job.dependents:  # not finished yet: watch it
                    job.dependents = (*job.dependents, (cmd.parent_id, cmd.parent_slot))
                    self.journal.put(job)
                return p.Watched("watching")
            case _:
                assert_never(job.state)

    def job_completed(self, job: Job, result: bytes | None) -> None:
        for parent_id, slot in job.dependents:
            self._notify(slot, p.ResolveDependency(parent_id, job.id, True, result))

    def job_failed_for_good(self, job: Job, parent_policy: FlowPolicy | None = None) -> None:
        """Every job waiting for `job` is told it will not complete; its flow parent acts on `parent_policy`
        when given (a child removed unprocessed: REMOVE), else on the child's own policy."""
        for parent_id, slot in job.dependents:
            policy = (parent_policy or job.flow_policy) if parent_id == job.parent_id else None
            self._notify(
                slot, p.ResolveDependency(parent_id, job.id, False, None, job.failed_reason, policy, job.queue)
            )

    def _notify(self, slot: int, cmd: p.ResolveDependency) -> None:
        if shard_of_slot(slot, self.shards) == self.shard:
            self.resolve(cmd)
            return
        key = (cmd.parent_id, cmd.dep_id)
        self.outbox[key] = (slot, cmd)
        self.journal.put_outbox(key, slot, cmd)
        self._deliver(key)

    def _deliver(self, key: Key) -> None:
        entry = self.outbox.get(key)
        if entry is None:
            return
        slot, cmd = entry
        self.engine.send(shard_of_slot(slot, self.shards), cmd, lambda reply: self._delivered(key, reply))
        self.timers.at(self.clock() + RETRY_MS, self._deliver, key)

    def _delivered(self, key: Key, reply: p.Reply) -> None:
        if isinstance(reply, p.Done) and self.outbox.pop(key, None) is not None:
            self.journal.delete_outbox(key)

    def load_outbox(self, store: Store) -> None:
        for parent_id, dep_id, slot, blob in store.outbox_rows():
            cmd = msgspec.msgpack.decode(blob, type=p.ResolveDependency)
            self.outbox[(parent_id, dep_id)] = (slot, cmd)
            self._deliver((parent_id, dep_id))

    # ---- repeat ---------------------------------------------------------------------------------

    def repeat_after_completion(self, job: Job) -> None:
        """Push the job's next run: `every` ms after this completion, or at the next cron time, up to `limit` runs."""
        if job.repeat is None:
            return
        repeat = parse_repeat(job.repeat)
        runs = job.repeat_count + 1
        if repeat.limit is not None and runs >= repeat.limit:
            return
        now = self.clock()
        expression = repeat.cron or repeat.pattern
        if expression is not None:
            run_at = next_cron(expression, repeat.tz, now)
        elif repeat.every:
            run_at = now + repeat.every
        else:
            return
        q = self.engine.queue(job.queue)
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
            dependents=(),
            pending_deps=(),
            children=None,
            flow=None,
            hold=None,
            repeat_count=runs,
            seq=0,  # placed anew by `enqueue`
        )
        self.engine.admit(nxt, q)
