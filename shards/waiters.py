"""Callers waiting for one job to finish (`WaitJob`): woken by its outcome or answered at their deadline."""

from __future__ import annotations

from collections.abc import Callable

from bunq.protocol import Reply, WaitOutcome
from shards.timers import Timers

Respond = Callable[[Reply], None]


class JobWaiters:
    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.by_job: dict[str, list[Respond]] = {}

    def wait_for(self, job_id: str, respond: Respond, deadline: int) -> None:
        self.by_job.setdefault(job_id, []).append(respond)
        self.timers.at(deadline, self._deadline_due, (job_id, respond))

    def wake(self, job_id: str, completed: bool, result: bytes | None, state: str) -> None:
        """The job's outcome to everyone waiting on it; built only when someone is (rarely, on a busy path)."""
        waiting = self.by_job.pop(job_id, None)
        if waiting:
            outcome = WaitOutcome(completed, result, state)
            for respond in waiting:
                respond(outcome)

    def _deadline_due(self, arg: tuple[str, Respond]) -> None:
        job_id, respond = arg
        waiting = self.by_job.get(job_id)
        if waiting and respond in waiting:
            waiting.remove(respond)
            if not waiting:
                del self.by_job[job_id]
            respond(WaitOutcome(False))
