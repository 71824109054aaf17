"""The shard engine: in-memory job state, its transitions, timers, and the `HANDLERS` dispatch table.

Handlers (in `shards.handlers`) validate and call the transitions here; every transition records the
changed job in the journal and publishes its event. Nothing here does I/O except through the journal's
flush, which the server loop (or a test) calls.
"""

from __future__ import annotations

import heapq
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from bunq import errors
from bunq.protocol import Command, Error, Jobs, Reply
from bunq.routing import slot_of
from shards.job import ACTIVE, COMPLETED, DELAYED, FAILED, WAITING, Job, from_blob, render
from shards.journal import Journal
from shards.queues import QueueState, Waiter
from shards.store import Store

log = logging.getLogger("bunq.shard")

Respond = Callable[[Reply], None]
Handler = Callable[["Engine", Any, Respond], Reply | None]

MAX_RETRY_DELAY_MS = 24 * 3600 * 1000
RESULTS_LRU = 5000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class EventSink(Protocol):
    def wants(self, name: str) -> bool: ...

    def publish(self, name: str, data: dict[str, Any]) -> None: ...


class NoEvents:
    def wants(self, name: str) -> bool:
        return False

    def publish(self, name: str, data: dict[str, Any]) -> None:
        return None


class Engine:
    def __init__(
        self,
        store: Store,
        *,
        shard: int = 0,
        slots: int = 256,
        clock: Callable[[], int] = wall_clock_ms,
        events: EventSink | None = None,
        completed_cache: int = 10_000,
    ) -> None:
        self.shard = shard
        self.slots = slots
        self.clock = clock
        self.events: EventSink = events or NoEvents()
        self.store = store
        self.journal = Journal(store)
        self.jobs: dict[str, Job] = {}
        self.queues: dict[str, QueueState] = {}
        self.completed: OrderedDict[str, Job] = OrderedDict()
        self.completed_cache = completed_cache
        self.results: OrderedDict[str, bytes | None] = OrderedDict()
        self.unique: dict[tuple[str, str], str] = {}
        self.delayed: list[tuple[int, int, Job]] = []
        self.deadlines: list[tuple[int, int, Waiter]] = []
        self.after_commit: list[tuple[Respond, Reply]] = []
        self.seq = 0
        self.totals = {"pushed": 0, "pulled": 0, "completed": 0, "failed": 0}
        self._slot_cache: dict[str, int] = {}

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
        if reply is not None:
            respond(reply)

    # ---- lookups --------------------------------------------------------------------------------

    def slot(self, queue: str) -> int:
        slot = self._slot_cache.get(queue)
        if slot is None:
            if len(self._slot_cache) > 100_000:
                self._slot_cache.clear()
            slot = self._slot_cache[queue] = slot_of(queue, self.slots)
        return slot

    def queue(self, name: str) -> QueueState:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = QueueState(name)
        return q

    def find(self, job_id: str) -> Job | None:
        """Any job this shard holds, live, recently completed or only on disk."""
        job = self.jobs.get(job_id) or self.completed.get(job_id) or self.journal.dirty.get(job_id)
        if job is None and job_id not in self.journal.deleted:
            blob = self.store.get(job_id)
            if blob is not None:
                job = from_blob(blob)
        return job

    def next_key(self, lifo: bool) -> int:
        self.seq += 1
        return -self.seq if lifo else self.seq

    # ---- transitions ----------------------------------------------------------------------------

    def enqueue(self, job: Job, q: QueueState) -> None:
        """Make a job available (waiting) or schedule it (delayed) by its run_at."""
        if job.run_at > self.clock():
            job.state = DELAYED
            q.delayed += 1
            heapq.heappush(self.delayed, (job.run_at, job.seq, job))
        else:
            job.state = WAITING
            job.seq = self.next_key(job.lifo)
            q.push(job)
            if q.waiters:
                self.serve_waiters(q)
        self.journal.put(job)

    def activate(self, job: Job, q: QueueState, owner: str | None, lock_ttl: int | None) -> None:
        now = self.clock()
        job.state = ACTIVE
        job.started_at = now
        job.last_heartbeat = now
        job.owner = owner
        job.token = new_token() if owner is not None else None
        job.lock_expires_at = now + lock_ttl if (owner is not None and lock_ttl) else None
        q.active += 1
        self.totals["pulled"] += 1
        self.journal.put(job)
        self.emit("job:active", job)

    def take(self, q: QueueState, count: int, owner: str | None, lock_ttl: int | None) -> list[Job]:
        if q.paused:
            return []
        taken: list[Job] = []
        while len(taken) < count:
            job = q.pop()
            if job is None:
                break
            self.activate(job, q, owner, lock_ttl)
            taken.append(job)
        return taken

    def complete(self, job: Job, result: bytes | None) -> None:
        q = self.queue(job.queue)
        q.active -= 1
        self.totals["completed"] += 1
        self.release_unique(job)
        now = self.clock()
        job.completed_at = now
        job.token = None
        job.lock_expires_at = None
        del self.jobs[job.id]
        self.emit("job:completed", job)
        if job.remove_on_complete:
            self.remember_result(job.id, result)
            self.journal.delete(job.id)
            return
        job.state = COMPLETED
        job.result = result
        q.completed += 1
        self.cache_completed(job)
        self.journal.put(job)

    def fail(self, job: Job, error: str | None, reason: str, *, backoff: bool = True) -> None:
        """Charge an attempt for an active job: retry (after its backoff), or dead-letter it when out of attempts."""
        q = self.queue(job.queue)
        q.active -= 1
        self.totals["failed"] += 1
        job.attempts += 1
        job.failed_reason = error
        job.token = None
        job.owner = None
        job.lock_expires_at = None
        self.emit("job:failed", job, error=error)
        if job.attempts >= job.max_attempts:
            self.dead_letter(job, q, reason)
            return
        delay = min(job.backoff * (2 ** (job.attempts - 1)), MAX_RETRY_DELAY_MS) if backoff else 0
        job.run_at = self.clock() + delay
        job.seq = self.next_key(job.lifo)
        self.enqueue(job, q)

    def dead_letter(self, job: Job, q: QueueState, reason: str) -> None:
        self.release_unique(job)
        if job.remove_on_fail:
            del self.jobs[job.id]
            self.journal.delete(job.id)
            return
        job.state = FAILED
        job.dlq_entered_at = self.clock()
        job.dlq_reason = reason
        q.dlq[job.id] = job
        self.journal.put(job)
        self.emit("dlq:added", job, reason=reason)

    def remove(self, job: Job) -> None:
        """Take a job out of whatever state it is in (cancel); a later ack of it finds nothing."""
        q = self.queue(job.queue)
        state = job.state
        if state == WAITING:
            job.state = "removed"
            q.discard_waiting()
        elif state == DELAYED:
            q.delayed -= 1
        elif state == ACTIVE:
            q.active -= 1
        elif state == FAILED:
            q.dlq.pop(job.id, None)
        elif state == COMPLETED:
            q.completed -= 1
            self.completed.pop(job.id, None)
        job.state = "removed"
        self.jobs.pop(job.id, None)
        self.release_unique(job)
        self.journal.delete(job.id)
        self.emit("job:removed", job)

    # ---- bookkeeping ----------------------------------------------------------------------------

    def release_unique(self, job: Job) -> None:
        if job.unique_key is not None and self.unique.get((job.queue, job.unique_key)) == job.id:
            del self.unique[(job.queue, job.unique_key)]

    def cache_completed(self, job: Job) -> None:
        if self.completed_cache <= 0:
            return
        self.completed[job.id] = job
        while len(self.completed) > self.completed_cache:
            self.completed.popitem(last=False)

    def remember_result(self, job_id: str, result: bytes | None) -> None:
        self.results[job_id] = result
        while len(self.results) > RESULTS_LRU:
            self.results.popitem(last=False)

    def emit(self, name: str, job: Job, **extra: Any) -> None:
        if self.events.wants(name):
            self.events.publish(name, {"queue": job.queue, "jobId": job.id, **extra})

    # ---- waiters and timers ---------------------------------------------------------------------

    def park(self, q: QueueState, waiter: Waiter) -> None:
        q.waiters.append(waiter)
        self.seq += 1
        heapq.heappush(self.deadlines, (waiter.deadline, self.seq, waiter))

    def serve_waiters(self, q: QueueState) -> None:
        while q.waiters and q.waiting and not q.paused:
            waiter = q.waiters.popleft()
            if waiter.done:
                continue
            waiter.done = True
            taken = self.take(q, waiter.count, waiter.owner, waiter.lock_ttl)
            waiter.respond(Jobs([render(j) for j in taken], [j.token for j in taken]))

    def tick(self) -> None:
        """Run every timer that is due: delayed jobs becoming waiting, long-polls timing out."""
        now = self.clock()
        delayed = self.delayed
        while delayed and delayed[0][0] <= now:
            run_at, _, job = heapq.heappop(delayed)
            if job.state == DELAYED and job.run_at == run_at:
                q = self.queue(job.queue)
                q.delayed -= 1
                job.seq = self.next_key(job.lifo)
                self.enqueue(job, q)
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, waiter = heapq.heappop(deadlines)
            if not waiter.done:
                waiter.done = True
                waiter.respond(Jobs([]))
                self._prune_waiters(waiter.queue)

    def _prune_waiters(self, name: str) -> None:
        q = self.queues.get(name)
        if q is None:
            return
        waiters = q.waiters
        while waiters and waiters[0].done:
            waiters.popleft()
        if len(waiters) > 256 and sum(1 for w in waiters if w.done) > len(waiters) // 2:
            q.waiters = type(waiters)(w for w in waiters if not w.done)
        if q.is_empty():
            del self.queues[name]

    def next_timer(self) -> int | None:
        """The wall-clock ms of the earliest pending timer, if any."""
        times = [h[0][0] for h in (self.delayed, self.deadlines) if h]
        return min(times) if times else None

    # ---- persistence ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the journal in one transaction, then answer the replies that waited for that commit."""
        pending, self.after_commit = self.after_commit, []
        try:
            self.journal.flush()
        except Exception:
            log.exception("journal flush failed")
            for respond, _ in pending:
                respond(Error("internal", "Failed to persist job"))
            return
        for respond, reply in pending:
            respond(reply)

    def load(self) -> None:
        """Rebuild memory from storage; jobs that were active when the shard stopped are charged an attempt."""
        for queue, count in self.store.completed_counts().items():
            self.queue(queue).completed = count
        live = [from_blob(blob) for blob in self.store.live_blobs()]
        live.sort(key=lambda j: abs(j.seq))
        self.seq = max((abs(j.seq) for j in live), default=0)
        for job in live:
            self._restore(job)
        self.journal.flush()

    def _restore(self, job: Job) -> None:
        q = self.queue(job.queue)
        self.jobs[job.id] = job
        if job.unique_key is not None:
            self.unique[(job.queue, job.unique_key)] = job.id
        if job.state == FAILED:
            q.dlq[job.id] = job
            return
        if job.state == ACTIVE:
            q.active += 1
            self.fail(job, "Job was active when the shard stopped", "stalled", backoff=False)
            return
        if job.state == DELAYED:
            job.seq = self.next_key(job.lifo)
            self.enqueue(job, q)
            return
        job.state = WAITING
        q.push(job)


def new_token() -> str:
    return str(uuid.uuid4())


from shards.handlers import HANDLERS  # noqa: E402  (the table names the engine's handlers)
