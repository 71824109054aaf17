"""One heap of timers for a shard: delayed jobs, long-poll deadlines, locks, stalls, TTLs, retries.

An entry is (due, seq, callback, arg). Callbacks check that what they were set for still holds (the job
is still delayed with that run_at, the lock still has that expiry, ...), so a single superseded entry
simply finds nothing to do when it comes due. After a bulk removal (drain, clean, obliterate) the heap is
swept at once instead, so entries do not keep a million removed jobs alive until their due times.
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

    def discard(self, moot: Callable[[Any], bool]) -> int:
        """Drop every entry whose arg is `moot`; O(n), for after a bulk removal. Returns how many went."""
        kept = [entry for entry in self.heap if not moot(entry[3])]
        dropped = len(self.heap) - len(kept)
        if dropped:
            heapq.heapify(kept)
            self.heap = kept
        return dropped

    def next_due(self) -> int | None:
        return self.heap[0][0] if self.heap else None

    def __len__(self) -> int:
        return len(self.heap)
