"""Per-queue in-memory state inside a shard: the priority heap, counters, the DLQ, groups and waiters."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bunq.protocol import Reply
from shards.job import WAITING, Job


@dataclass(eq=False)
class Waiter:
    """A pull parked until a job arrives or its deadline passes."""

    respond: Callable[[Reply], None]
    count: int
    owner: str | None
    lock_ttl: int | None
    deadline: int
    queue: str = ""
    done: bool = False


@dataclass
class StallConfig:
    stall_interval: int = 30_000
    max_stalls: int = 3
    grace_period: int = 5_000


@dataclass(eq=False)
class QueueState:
    """Heap entries are (-priority, key, job): higher priority first, then ascending key, where FIFO jobs
    get increasing keys and LIFO jobs decreasing negative ones (so they jump ahead within their priority).
    An entry is live only while its job is waiting with the same key; others are skipped lazily.

    Jobs of a group whose previous job is still active are set aside in `parked` when popped and go
    back into the heap (with their keys, so in order) when the group frees up."""

    name: str
    heap: list[tuple[int, int, Job]] = field(default_factory=list)
    waiting: int = 0
    delayed: int = 0
    waiting_children: int = 0
    completed: int = 0
    active: dict[str, Job] = field(default_factory=dict)
    dlq: dict[str, Job] = field(default_factory=dict)
    waiters: deque[Waiter] = field(default_factory=deque)
    groups_active: dict[str, int] = field(default_factory=dict)
    parked: dict[str, list[Job]] = field(default_factory=dict)
    paused: bool = False
    stall: StallConfig = field(default_factory=StallConfig)
    stall_check_due: int | None = None

    def push(self, job: Job) -> None:
        heapq.heappush(self.heap, (-job.priority, job.seq, job))
        self.waiting += 1

    def pop(self) -> Job | None:
        heap = self.heap
        while heap:
            _, key, job = heapq.heappop(heap)
            if job.state == WAITING and job.seq == key:
                if job.group_id is not None and self.groups_active.get(job.group_id):
                    self.parked.setdefault(job.group_id, []).append(job)
                    continue
                self.waiting -= 1
                return job
        return None

    def unpark(self, group: str) -> None:
        """The group's active job finished: its set-aside jobs compete again."""
        for job in self.parked.pop(group, ()):
            if job.state == WAITING:
                heapq.heappush(self.heap, (-job.priority, job.seq, job))

    def discard_waiting(self) -> None:
        """A waiting job left by another way than pop (its entry goes stale); compact when mostly stale."""
        self.waiting -= 1
        if len(self.heap) > 64 and len(self.heap) > 4 * (self.waiting + 1):
            self.heap = [e for e in self.heap if e[2].state == WAITING and e[2].seq == e[1]]
            heapq.heapify(self.heap)

    def counts(self) -> dict[str, int]:
        return {
            "waiting": self.waiting,
            "prioritized": 0,
            "delayed": self.delayed,
            "active": len(self.active),
            "completed": self.completed,
            "failed": len(self.dlq),
            "waiting-children": self.waiting_children,
            "paused": self.waiting if self.paused else 0,
        }

    def is_empty(self) -> bool:
        return not (
            self.waiting
            or self.delayed
            or self.active
            or self.completed
            or self.dlq
            or self.waiters
            or self.waiting_children
        )
