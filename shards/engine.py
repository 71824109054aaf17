"""The shard engine: dispatch through the `HANDLERS` table, and the job state transitions.

The engine is built from parts that own their state: the job index, the queue registry, leases, long
polls, the dead-letter queue, flows, job waiters, the event emitter and the sweep after bulk removals,
all on one clock and one timer heap. Handlers (in `shards.handlers`) validate and call the transitions
here and the parts' methods; every transition records the changed job in the journal and publishes its
event. Nothing here does I/O except through the journal's flush (which the server loop or a test calls)
and `outgoing`, the messages for other shards that the server sends after each turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, assert_never

import msgspec

from bunq import errors
from bunq.protocol import Command, DlqReason, Error, FlowPolicy, Reply, State
from shards import recovery
from shards.commits import Commits
from shards.dedup import Dedup
from shards.dlq import DeadLetters
from shards.emitter import Emitter, EventSink, NoEvents
from shards.flows import Flows
from shards.groups import Groups
from shards.handlers import HANDLERS
from shards.histograms import Histogram
from shards.index import JobIndex
from shards.job import (
    ACTIVE,
    COMPLETED,
    DELAYED,
    EXPIRED,
    FAILED,
    REMOVED,
    REMOVED_UNFINISHED,
    WAITING,
    WAITING_CHILDREN,
    Job,
    reset_runs,
)
from shards.journal import Journal
from shards.leases import Leases
from shards.logs import JobLogs
from shards.pulls import Pulls
from shards.queues import QueueState
from shards.registry import QueueRegistry
from shards.store import Store
from shards.sweep import Sweeper
from shards.timers import Timers
from shards.waiters import JobWaiters, Respond

log = logging.getLogger("bunq.shard")

Handler = Callable[["Engine", Any, Respond], Reply | None]

MAX_RETRY_DELAY_MS = 24 * 3600 * 1000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Engine:
    def __init__(
        self,
        store: Store,
        *,
        shard: int = 0,
        shards: int = 1,
        slots: int = 256,
        clock: Callable[[], int] = wall_clock_ms,
        events: EventSink | None = None,
        completed_cache: int = 10_000,
    ) -> None:
        self.shard = shard
        self.shards = shards
        self.slots = slots
        self.clock = clock
        self.events: EventSink = events or NoEvents()
        self.emitter = Emitter(self.events)
        self.emit = self.emitter.emit
        self.emit_data = self.emitter.emit_data
        self.store = store
        self.journal = Journal(store)
        self.timers = Timers()
        self.logs = JobLogs(self.journal)
        self.index = JobIndex(self.journal, store, completed_cache)
        self.jobs = self.index.jobs  # read-only: the index writes it
        self.registry = QueueRegistry(self.journal, store, slots, self.emit_data)
        self.queues = self.registry.queues  # read-only: the registry writes it
        self.queue = self.registry.queue
        self.slot = self.registry.slot
        self.dlq = DeadLetters(clock, self.timers, self.journal, self.registry, self.index, self)
        self.flows = Flows(shard, shards, slots, clock, self.timers, self.journal, self.index, self)
        self.dedup = Dedup(clock, self.timers, self.journal, self.index)
        self.leases = Leases(clock, self.timers, self.journal, self.index, self.queues, self.stall)
        self.job_waiters = JobWaiters(self.timers)
        self.sweeper = Sweeper(self.timers, self.index, self.queues)
        self.forget_removed = self.sweeper.forget_removed
        self.wake_job_waiters = self.job_waiters.wake
        self.commits = Commits(self.journal)
        self.after_commit = self.commits.waiting  # read-only: replies waiting for the next commit
        self.outgoing: list[tuple[int, Command, Callable[[Reply], None]]] = []
        self.pulls = Pulls(self.timers, self.registry, self.take)
        self.to_serve = self.pulls.to_serve  # read-only: the pulls write it
        self.groups = Groups(clock, self.timers, self.registry, self.pulls)
        self.wait_histogram = Histogram()
        self.processing_histogram = Histogram()
        self.disk_full = False
        self.seq = 0
        self.totals = {"pushed": 0, "pulled": 0, "completed": 0, "failed": 0}

    # ---- dispatch -------------------------------------------------------------------------------

    def handle(self, command: Command, respond: Respond) -> None:
        """Run one command; `respond` is called now, after the next commit, or when a waiter wakes."""
        try:
            reply = HANDLERS[type(command)](self, command, respond)
        except errors.BunqError as exc:
            reply = Error(exc.code, exc.message)
        except Exception:
            log.exception("command %s failed", type(command).__name__)
            reply = Error("internal", "Internal server error")
        if self.to_serve:  # parked pulls first: their replies lead the frame, a job's way to a worker is the latency
            self.pulls.serve_pending()
        if reply is not None:
            respond(reply)

    def send(self, shard: int, command: Command, on_reply: Callable[[Reply], None]) -> None:
        """Queue a command for another shard (or run it here when `shard` is this one)."""
        if shard == self.shard:
            self.handle(command, on_reply)
        else:
            self.outgoing.append((shard, command, on_reply))

    # ---- lookups --------------------------------------------------------------------------------

    def resume_keys(self, last: int) -> None:
        """After a restart: keys continue past the largest one stored, so order is kept."""
        self.seq = last

    def next_key(self, lifo: bool) -> int:
        self.seq += 1
        return -self.seq if lifo else self.seq

    # ---- transitions ----------------------------------------------------------------------------

    def admit(self, job: Job, q: QueueState) -> None:
        """A new job enters its queue: waiting for dependencies, delayed, or waiting."""
        self.index.add(job)
        if not q.known:
            self.registry.mark_known(q)
        self.totals["pushed"] += 1
        self.emit("job:pushed", job)
        if job.ttl is not None:
            self.timers.at(job.created_at + job.ttl, self.ttl_due, job)
        if job.pending_deps:
            job.state = WAITING_CHILDREN
            q.dependents[job.id] = job
            self.journal.put(job)
            self.flows.watch_dependencies(job)
            return
        self.enqueue(job, q)

    def enqueue(self, job: Job, q: QueueState) -> None:
        """Make a job available (waiting) or schedule it (delayed) by its run_at."""
        if job.run_at > self.clock():
            job.state = DELAYED
            if not job.seq:  # a new job: its place among those due at the same time (a delayed one keeps it)
                job.seq = self.next_key(job.lifo)
            q.add_delayed(job)
            self.timers.at(job.run_at, self._delay_due, (job, job.run_at))
        else:
            job.state = WAITING
            job.seq = self.next_key(job.lifo)
            q.push(job)
            if q.waiters:  # once the command is done, so a parked pull-batch gets every job a bulk push brought
                self.pulls.serve_soon(q)
        self.journal.put(job)

    def reschedule(self, job: Job, run_at: int) -> None:
        """A delayed or waiting job's new run time: later delays it; now or earlier makes a delayed job
        waiting (`job:promoted`)."""
        was_delayed = job.state == DELAYED
        q = self.queue(job.queue)
        q.unschedule(job)
        job.run_at = run_at
        self.enqueue(job, q)
        if was_delayed and job.state == WAITING:
            self.emit("job:promoted", job)

    def activate(self, job: Job, q: QueueState, owner: str | None, lock_ttl: int | None, now: int) -> None:
        """`now` is the pull's own time: the one its rate limit counted, so `startedAt` agrees with it."""
        job.state = ACTIVE
        if job.attempts == 0 and job.started_at is None:
            self.wait_histogram.observe(max(0, now - job.run_at))
        job.started_at = now
        job.last_heartbeat = now
        q.active[job.id] = job
        if job.group_id is not None:
            q.groups_active[job.group_id] = q.groups_active.get(job.group_id, 0) + 1
            if q.settings.groups:
                self.groups.started(q, job.group_id, now)
        self.leases.grant(job, q, owner, lock_ttl)
        self.totals["pulled"] += 1
        self.journal.put(job)
        if self.events.wants("job:active"):
            self.emit("job:active", job, workerId=job.owner)
        self.emitter.count(job.owner, job.id, 0)

    def end_lease(self, job: Job) -> QueueState:
        """An active job stops being active (any outcome): free its lease and its group's turn."""
        q = self.queue(job.queue)
        q.active.pop(job.id, None)
        self.leases.end(job)
        job.token = None
        job.owner = None
        if job.group_id is not None:
            left = q.groups_active.get(job.group_id, 1) - 1
            if left <= 0:
                q.groups_active.pop(job.group_id, None)
            else:
                q.groups_active[job.group_id] = left
            self.groups.free(q, job.group_id)
        if q.waiters:
            self.pulls.serve_soon(q)  # a slot opened up; serve parked pulls once this command is done
        return q

    def take(self, q: QueueState, count: int, owner: str | None, lock_ttl: int | None) -> list[Job]:
        if q.settings.paused:
            return []
        now = self.clock()
        if q.timed:
            q.wake_timed(now)
        room = q.room(now, count)
        if room < count and q.waiting and q.settings.rate_limit is not None and self.events.wants("ratelimit:hit"):
            self.emit("ratelimit:hit", q.waiting[0][2])
        taken: list[Job] = []
        while len(taken) < room:
            job = q.pop(now)
            if job is None:
                break
            if job.ttl is not None and now >= job.created_at + job.ttl:
                job.state = REMOVED  # already out of the waiting list; expire() must not count it twice
                self.expire(job, q, counted=False)
                if job.group_id is not None:
                    q.free_group(job.group_id, now)  # its turn was kept for a start that did not happen
                continue
            self.activate(job, q, owner, lock_ttl, now)
            q.record_pull(now)
            taken.append(job)
        return taken

    def complete(self, job: Job, result: bytes | None) -> None:
        owner = job.owner
        q = self.end_lease(job)
        self.totals["completed"] += 1
        self.index.drop(job)
        job.completed_at = self.clock()
        self.processing_histogram.observe(max(0, job.completed_at - (job.started_at or job.completed_at)))
        if self.events.wants("job:completed"):
            raw = msgspec.Raw(result) if result is not None else None
            self.emit("job:completed", job, workerId=owner, result=raw)
        self.emitter.count(owner, job.id, 1)
        self.wake_job_waiters(job.id, True, result, COMPLETED)
        self.flows.job_completed(job, result)
        if job.remove_on_complete:
            self.index.remember_result(job.id, result)
            self.journal.delete(job.id, job.queue)
            self.logs.drop(job.id)
        else:
            job.state = COMPLETED
            job.result = result
            q.completed += 1
            self.index.finish(job)
            self.journal.put(job)
        self.flows.repeat_after_completion(job)

    def fail(
        self, job: Job, error: str | None, reason: DlqReason, *, backoff: bool = True, final: bool = False
    ) -> None:
        """Charge an attempt for an active job: retry (after its backoff), or dead-letter it when out of attempts
        (or at once when `final`)."""
        owner = job.owner
        q = self.end_lease(job)
        self.totals["failed"] += 1
        job.attempts += 1
        job.failed_reason = error
        if self.events.wants("job:failed"):
            self.emit("job:failed", job, error=error, workerId=owner, attempts=job.attempts)
        self.emitter.count(owner, job.id, 2)
        if final or job.attempts >= job.max_attempts:
            self.dead_letter(job, q, reason)
            return
        # the spec's backoff * 2^attempt, `attempt` the attempts made by now, as the reference reckons it
        # (without its jitter): 2·backoff after the first failure, then 4·, 8·...
        delay = min(job.backoff * (2**job.attempts), MAX_RETRY_DELAY_MS) if backoff else 0
        job.run_at = self.clock() + delay
        job.seq = self.next_key(job.lifo)
        self.enqueue(job, q)
        self.emit("job:retried", job)

    def stall(self, job: Job, reason: DlqReason, backoff: bool) -> None:
        """A lease ended without an ack: count the stall and charge an attempt (DLQ past either limit)."""
        q = self.queue(job.queue)
        job.stall_count += 1
        self.emit("job:stalled", job, reason=reason)
        if job.stall_count >= q.settings.stall.max_stalls and reason is DlqReason.STALLED:
            self.end_lease(job)
            job.attempts += 1
            job.failed_reason = "Job stalled more than the allowed limit"
            self.emit("job:failed", job, error=job.failed_reason)
            self.dead_letter(job, q, DlqReason.STALLED)
            return
        self.fail(job, f"Job {reason}", reason, backoff=backoff)

    def dead_letter(self, job: Job, q: QueueState, reason: DlqReason) -> None:
        """Into the DLQ (the job has already left its previous state). `removeOnFail` drops the job instead
        after a failure, not when it was discarded: discard is an explicit move to the DLQ (spec)."""
        self.index.drop_unique(job)
        self.wake_job_waiters(job.id, False, None, FAILED)
        self.flows.job_failed_for_good(job)
        if job.remove_on_fail and reason != DlqReason.DISCARDED:
            self.index.drop(job)
            self.journal.delete(job.id, job.queue)
            return
        self.dlq.add(q, job, reason)

    def expire(self, job: Job, q: QueueState, *, counted: bool = True) -> None:
        """A job not started within its ttl is discarded, as the spec says: `job:expired`, then it is gone
        (state `unknown`, 404), its logs too; a job depending on it is told it failed."""
        if counted:
            q.unschedule(job)
        now = self.clock()
        self.index.drop(job)
        job.state = EXPIRED
        job.failed_reason = "ttl expired"
        self.journal.delete(job.id, job.queue)
        self.logs.drop(job.id)
        self.emit("job:expired", job, ttl=job.ttl, age=now - job.created_at)
        self.wake_job_waiters(job.id, False, None, "unknown")
        self.flows.job_failed_for_good(job)

    def requeue(self, q: QueueState, job: Job) -> None:
        """A finished job (completed or dead-lettered) runs again from scratch."""
        reset_runs(job)
        job.run_at = self.clock()
        self.index.readd(job)
        self.enqueue(job, q)

    def remove(self, job: Job, *, event: bool = True, parent_policy: FlowPolicy | None = None) -> None:
        """Take a job out of whatever state it is in (cancel); a later ack of it finds nothing. A job that had
        not finished will never complete: the jobs waiting for it are told it failed for good, and follow
        their policy (by default the DLQ; its flow parent `parent_policy` when given), instead of waiting
        forever."""
        q = self.queue(job.queue)
        unfinished = job.state in (State.WAITING, State.DELAYED, State.ACTIVE, State.WAITING_CHILDREN)
        match job.state:
            case State.ACTIVE:
                self.end_lease(job)
            case State.FAILED:
                q.dlq.pop(job.id, None)
            case State.COMPLETED:
                q.completed -= 1
                self.index.unfinish(job.id)
            case State.EXPIRED:
                self.index.unfinish(job.id)
            case State.WAITING | State.DELAYED | State.WAITING_CHILDREN | State.REMOVED:
                q.unschedule(job)
            case _:
                assert_never(job.state)
        job.state = REMOVED
        self.index.drop(job)
        self.journal.delete(job.id, job.queue)
        self.logs.drop(job.id)
        if event:
            self.emit("job:removed", job)
        self.wake_job_waiters(job.id, False, None, "unknown")
        if unfinished and job.dependents:
            job.failed_reason = REMOVED_UNFINISHED
            self.flows.job_failed_for_good(job, parent_policy)

    # ---- the server loop's turn: timers and periodic counts -------------------------------------

    def tick(self) -> None:
        """Run every timer that is due."""
        self.timers.run_due(self.clock())
        if self.to_serve:
            self.pulls.serve_pending()

    def next_timer(self) -> int | None:
        return self.timers.next_due()

    def publish_counts(self) -> None:
        """Once per turn of the loop: the coalesced `queue:counts`, and the worker registry's tally when due."""
        self.emitter.publish_counts(self.journal, self.queues)
        self.emitter.publish_tally()

    def _delay_due(self, arg: tuple[Job, int]) -> None:
        job, run_at = arg
        if job.state == DELAYED and job.run_at == run_at:
            q = self.queue(job.queue)
            q.unlink_delayed(job)
            self.enqueue(job, q)

    def ttl_due(self, job: Job) -> None:
        match job.state:
            case State.WAITING | State.DELAYED | State.WAITING_CHILDREN:
                if self.jobs.get(job.id) is job:
                    self.expire(job, self.queue(job.queue))
            case State.ACTIVE | State.COMPLETED | State.FAILED | State.EXPIRED | State.REMOVED:
                return  # started in time, or already gone
            case _:
                assert_never(job.state)

    # ---- persistence ----------------------------------------------------------------------------

    def after_next_commit(self, respond: Respond, reply: Reply) -> None:
        """Answer `reply` only once the next flush has committed (a durable write)."""
        self.commits.after_next_commit(respond, reply)

    def flush(self) -> None:
        """Commit the journal now, then answer the replies that waited for that commit."""
        self.commits.flush()

    def flush_soon(self) -> None:
        """Hand the journal to the writer thread (the server loop's periodic flush); `flush` without one."""
        self.commits.flush_soon()

    def load(self) -> None:
        """Rebuild memory from storage (see `shards.recovery`)."""
        recovery.recover(self)
