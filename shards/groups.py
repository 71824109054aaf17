"""Per-group limits inside a shard: pause, concurrency and rate limits of a queue's groups (set by the
group commands, kept in the queue's settings), and what frees a blocked group's set-aside jobs.

A group's jobs wait set aside (`QueueState.parked`) while it is blocked. Whatever may free it calls
`free`: a resume, a change of its limits, one of its active jobs ending, and a timer at the end of a rate
window it filled or of a hold (`RateLimitGroup`), set when that block begins. Freed, its best job goes
back to compete (each start brings the next), and the queue's parked pulls are served.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from shards.pulls import Pulls
from shards.queues import GroupSettings, QueueState
from shards.registry import QueueRegistry
from shards.timers import Timers


class Groups:
    def __init__(self, clock: Callable[[], int], timers: Timers, registry: QueueRegistry, pulls: Pulls) -> None:
        self.clock = clock
        self.timers = timers
        self.registry = registry
        self.pulls = pulls

    # ---- the job path (grouped jobs only) -------------------------------------------------------

    def started(self, q: QueueState, group: str, now: int) -> None:
        """A job of a group with settings became active."""
        until = q.group_started(group, now)
        if until is not None:
            self.timers.at(until, self._due, (q, group))

    def free(self, q: QueueState, group: str) -> None:
        """Put the group's best set-aside job back if it may start one now."""
        if q.free_group(group, self.clock()) and q.waiters:
            self.pulls.serve_soon(q)

    def _due(self, arg: tuple[QueueState, str]) -> None:
        q, group = arg
        if self.registry.current(q):
            q.group_wait(group, self.clock())  # forgets a hold or window that has ended
            self.free(q, group)

    # ---- the group commands ---------------------------------------------------------------------

    def change(self, queue: str, group: str, **changes: Any) -> bool:
        """Change the group's settings (saved with its queue's); whether anything changed."""
        known = self.registry.queues.get(queue)
        before = (known.settings.groups.get(group) if known else None) or GroupSettings()
        after = dataclasses.replace(before, **changes)
        if after == before:
            return False
        q = self.registry.queue(queue)
        if after.is_default():
            q.settings.groups.pop(group, None)
        else:
            q.settings.groups[group] = after
        if after.rate_limit != before.rate_limit:
            q.group_windows.pop(group, None)  # a new limit starts a new window
        self.registry.save(q)
        self.free(q, group)
        return True

    def hold(self, queue: str, group: str, duration: int) -> None:
        """No job of the group starts for `duration` ms (bunqueue's `RateLimitGroup`; not kept across restarts)."""
        q = self.registry.queue(queue)
        until = self.clock() + duration
        q.group_holds[group] = until
        self.timers.at(until, self._due, (q, group))
