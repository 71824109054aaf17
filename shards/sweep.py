"""After a bulk removal (drain, clean, obliterate, a DLQ purge): letting go at once of what still refers to
the jobs that left, so their memory is free for the next fill now rather than when their timers come due."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shards.index import JobIndex
from shards.job import REMOVED, Job
from shards.queues import QueueState
from shards.timers import Timers

BULK_REMOVAL = 1000  # jobs leaving in one operation past which their leftovers are swept at once


class Sweeper:
    def __init__(self, timers: Timers, index: JobIndex, queues: Mapping[str, QueueState]) -> None:
        self.timers = timers
        self.index = index
        self.queues = queues

    def forget_removed(self, count: int) -> None:
        """`count` jobs just left: past `BULK_REMOVAL`, drop the timers set for removed jobs or forgotten
        queues (O(timers)) and give back what the index's tables grew to."""
        if count < BULK_REMOVAL:
            return
        queues = self.queues

        def moot(arg: Any) -> bool:
            for item in arg if type(arg) is tuple else (arg,):
                if type(item) is Job and item.state is REMOVED:
                    return True
                if type(item) is QueueState and queues.get(item.name) is not item:
                    return True
            return False

        self.timers.discard(moot)
        self.index.compact()
