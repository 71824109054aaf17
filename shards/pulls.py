"""Long polls: pulls parked on a queue until a job arrives or their deadline passes, served in arrival
order whenever a job becomes available, a lease ends, or the queue's limits open up again."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bunq.protocol import Jobs
from shards.job import Job, render
from shards.queues import RATE_WINDOW_MS, QueueState, Waiter
from shards.registry import QueueRegistry
from shards.timers import Timers

Take = Callable[[QueueState, int, str | None, int | None], list[Job]]  # the engine's pull transition


class Pulls:
    def __init__(self, timers: Timers, registry: QueueRegistry, take: Take) -> None:
        self.timers = timers
        self.registry = registry
        self.queues = registry.queues
        self.take = take
        self._to_serve: dict[str, QueueState] = {}  # queues to serve once the current command is done
        self.to_serve: Mapping[str, QueueState] = self._to_serve

    def park(self, q: QueueState, waiter: Waiter) -> None:
        q.waiters.append(waiter)
        self.timers.at(waiter.deadline, self._waiter_due, waiter)
        if q.waiting and q.settings.rate_limit is not None and q.pulls:
            self._serve_when_window_opens(q)  # jobs wait behind a full window: nothing else would wake it

    def _serve_when_window_opens(self, q: QueueState) -> None:
        self.timers.at(q.pulls[0] + RATE_WINDOW_MS, self._rate_window_due, q)

    def serve_soon(self, q: QueueState) -> None:
        self._to_serve[q.name] = q

    def serve_pending(self) -> None:
        while self._to_serve:
            _, q = self._to_serve.popitem()
            if self.queues.get(q.name) is q:
                self.serve_waiters(q)

    def serve_waiters(self, q: QueueState) -> None:
        while q.waiters and q.waiting and not q.settings.paused:
            waiter = q.waiters.popleft()
            if waiter.done:
                continue
            taken = self.take(q, waiter.count, waiter.owner, waiter.lock_ttl)
            if not taken:
                q.waiters.appendleft(waiter)
                if q.settings.rate_limit is not None and q.pulls:
                    self._serve_when_window_opens(q)
                return
            waiter.done = True
            waiter.respond(Jobs([render(j) for j in taken], [j.token for j in taken]))

    def _rate_window_due(self, q: QueueState) -> None:
        if q.waiters and self.queues.get(q.name) is q:
            self.serve_waiters(q)

    def _waiter_due(self, waiter: Waiter) -> None:
        if waiter.done:
            return
        waiter.done = True
        waiter.respond(Jobs([]))
        q = self.queues.get(waiter.queue)
        if q is None:
            return
        waiters = q.waiters
        while waiters and waiters[0].done:
            waiters.popleft()
        if len(waiters) > 256 and sum(1 for w in waiters if w.done) > len(waiters) // 2:
            q.waiters = type(waiters)(w for w in waiters if not w.done)
        self.registry.forget_if_ghost(waiter.queue)
