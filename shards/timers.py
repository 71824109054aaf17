"""One heap of timers for a shard: delayed jobs, long-poll deadlines, locks, stalls, TTLs, retries.

An entry is (due, seq, callback, arg). Callbacks check that what they were set for still holds (the job
is still delayed with that run_at, the lock still has that expiry, ...), so nothing is ever removed
from the heap early: superseded entries simply find nothing to do.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

Callback = Callable[[Any], None]


class Timers:
    def __init__(self) -> None:
        self.heap: list[tuple[int, int, Callback, Any]] = []
        self.counter = itertools.count()

    def at(self, due: int, callback: Callback, arg: Any) -> None:
        heapq.heappush(self.heap, (due, next(self.counter), callback, arg))

    def run_due(self, now: int) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, callback, arg = heapq.heappop(heap)
            callback(arg)

    def next_due(self) -> int | None:
        return self.heap[0][0] if self.heap else None

    def __len__(self) -> int:
        return len(self.heap)
