"""Per-queue in-memory state inside a shard: ordered indexes of its jobs, counters, DLQ, limits, waiters.

Waiting jobs sit in a sorted list keyed (-priority, key, job): higher priority first, then ascending key,
where FIFO jobs get increasing keys and LIFO jobs decreasing negative ones (so they jump ahead within
their priority). Being sorted (rather than a heap) lets `jobs/list` page through them in order and lets
a cancelled job leave at once, both in O(log n). Delayed jobs are indexed by run time, and waiting and
delayed jobs by creation time for `clean`.

Jobs with a group wait in two places: the group's best job (its front) in `waiting`, where it competes
with every other job, and the rest in the group's own sorted list, `parked[group]`, by the same key. The
front that a pull takes makes way for the group's next job, unless that start fills the group. A pull
that finds a front's group blocked (paused, at its concurrency, one job at a time by default, or held by
a rate limit) sets it aside too, and the group then has no front until something frees it (`free_group`):
while it stays blocked no pull looks at its jobs, and freed, only its best job goes back (each start
brings the next), so a large group is never set aside job by job. Jobs without a group pay nothing for
any of it.
"""

from __future__ import annotations

import collections
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, assert_never

import msgspec
from sortedcontainers import SortedList

from bunq.protocol import QueueCounts, Reply, State
from shards.job import Job

Entry = tuple[int, int, Job]
RATE_WINDOW_MS = 1000  # the rate limit is pulls per this sliding window


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
    enabled: bool = True


@dataclass
class DlqConfig:
    auto_retry: bool = False
    max_age: int = 7 * 24 * 3600 * 1000
    max_entries: int = 10_000
    auto_retry_interval: int = 3_600_000
    max_auto_retries: int = 3


@dataclass
class GroupSettings:
    """One group's own limits (PauseGroup, SetGroupConcurrency, SetGroupRateLimit), kept with its queue's."""

    paused: bool = False
    concurrency: int | None = None  # None: one job at a time
    rate_limit: tuple[int, int] | None = None  # at most max starts per window of duration ms

    def is_default(self) -> bool:
        return not self.paused and self.concurrency is None and self.rate_limit is None


WHEN_FREED = -1  # `group_wait`: blocked until something frees the group (a resume, an active job that ends)


def _concurrency(rules: GroupSettings | None) -> int:
    """How many of a group's jobs may be active at once: one, unless its settings say more."""
    return 1 if rules is None or rules.concurrency is None else rules.concurrency


@dataclass
class QueueSettings:
    """What a queue keeps beyond its jobs; persisted, and moved with its slot on resharding."""

    paused: bool = False
    rate_limit: int | None = None
    concurrency: int | None = None
    stall: StallConfig = field(default_factory=StallConfig)
    dlq: DlqConfig = field(default_factory=DlqConfig)
    groups: dict[str, GroupSettings] = field(default_factory=dict)  # only groups with a setting


@dataclass(eq=False)
class QueueState:
    name: str
    waiting: SortedList = field(default_factory=SortedList)
    delayed: SortedList = field(default_factory=SortedList)
    priorities: collections.Counter[int] = field(default_factory=collections.Counter)  # of the waiting jobs
    delayed_priorities: collections.Counter[int] = field(default_factory=collections.Counter)
    dependents: dict[str, Job] = field(default_factory=dict)  # waiting for children, as they came
    completed: int = 0
    active: dict[str, Job] = field(default_factory=dict)
    dlq: dict[str, Job] = field(default_factory=dict)
    waiters: deque[Waiter] = field(default_factory=deque)
    groups_active: dict[str, int] = field(default_factory=dict)
    fronts: dict[str, Entry] = field(default_factory=dict)  # a group's one job in `waiting`: its best
    parked: dict[str, SortedList] = field(default_factory=dict)  # a group's other waiting jobs, in key order
    parked_count: int = 0
    timed: list[tuple[int, str]] = field(default_factory=list)  # heap: (when, group) set aside until a time
    group_sizes: dict[str, int] = field(default_factory=dict)  # waiting and delayed jobs per group
    group_windows: dict[str, list[int]] = field(default_factory=dict)  # rate-limited group: [start, starts]
    group_holds: dict[str, int] = field(default_factory=dict)  # RateLimitGroup: no starts until then
    settings: QueueSettings = field(default_factory=QueueSettings)
    known: bool = False
    stall_check_due: int | None = None
    dlq_sweep_due: int | None = None  # when the armed max-age sweep of the DLQ runs
    pulls: deque[int] = field(default_factory=deque)

    # ---- waiting --------------------------------------------------------------------------------

    def push(self, job: Job) -> None:
        entry = (-job.priority, job.seq, job)
        self.priorities[job.priority] += 1
        group = job.group_id
        if group is None:
            self.waiting.add(entry)
            return
        self._grow_group(group)
        front = self.fronts.get(group)
        if front is not None:
            if entry < front:  # it goes first in its group: the front makes way
                self.waiting.remove(front)
                self.waiting.add(entry)
                self.fronts[group] = entry
                entry = front
            self._park(group, entry)
        elif group in self.parked:  # set aside: the new job waits with the others, in its place
            self._park(group, entry)
        else:
            self.waiting.add(entry)
            self.fronts[group] = entry

    def unlink_waiting(self, job: Job) -> None:
        """Take a waiting job out of every index (it is leaving the waiting state)."""
        entry = (-job.priority, job.seq, job)
        _uncount(self.priorities, job.priority)
        group = job.group_id
        if group is None:
            self.waiting.discard(entry)
            return
        self._shrink_group(group)
        front = self.fronts.get(group)
        if front is not None and front[2] is job:
            self.waiting.remove(front)
            del self.fronts[group]
            self._promote(group)
            return
        parked = self.parked.get(group)
        if parked is not None:
            i = parked.bisect_left(entry)
            if i < len(parked) and parked[i][2] is job:
                del parked[i]
                self.parked_count -= 1
                if not parked:
                    del self.parked[group]

    def pop(self, now: int) -> Job | None:
        """The next job to hand out; a front whose group is blocked is set aside on the way."""
        waiting = self.waiting
        while waiting:
            entry: Entry = waiting.pop(0)
            job = entry[2]
            group = job.group_id
            if group is not None:
                del self.fronts[group]
                wait = self.group_wait(group, now)
                if wait:
                    self._park(group, entry)
                    self._note_wait(group, now, wait)
                    continue
                self._shrink_group(group)
                if not self._full_after_start(group):
                    self._promote(group)
            _uncount(self.priorities, job.priority)
            return job
        return None

    def every_waiting(self) -> Iterator[Job]:
        """Every waiting job, set-aside ones too, in no particular order."""
        yield from (entry[2] for entry in self.waiting)
        for entries in self.parked.values():
            yield from (entry[2] for entry in entries)

    def waiting_in_order(self, start: int, stop: int) -> Iterator[Job]:
        """Waiting jobs start..stop in the order they will be handed out (set-aside ones merged in)."""
        if not self.parked_count:
            return (entry[2] for entry in self.waiting.islice(start, stop))
        lists = [self.waiting.islice(0, stop), *(entries.islice(0, stop) for entries in self.parked.values())]
        return (entry[2] for entry in itertools.islice(heapq.merge(*lists), start, stop))

    # ---- delayed --------------------------------------------------------------------------------

    def add_delayed(self, job: Job) -> None:
        self.delayed.add((job.run_at, job.seq, job))
        self.delayed_priorities[job.priority] += 1
        if job.group_id is not None:
            self._grow_group(job.group_id)

    def unlink_delayed(self, job: Job) -> None:
        entry = (job.run_at, job.seq, job)
        if entry not in self.delayed:
            return
        self.delayed.remove(entry)
        _uncount(self.delayed_priorities, job.priority)
        if job.group_id is not None:
            self._shrink_group(job.group_id)

    # ---- groups ---------------------------------------------------------------------------------

    def _grow_group(self, group: str) -> None:
        self.group_sizes[group] = self.group_sizes.get(group, 0) + 1

    def _shrink_group(self, group: str) -> None:
        left = self.group_sizes.get(group, 1) - 1
        if left > 0:
            self.group_sizes[group] = left
        else:
            self.group_sizes.pop(group, None)

    def _park(self, group: str, entry: Entry) -> None:
        parked = self.parked.get(group)
        if parked is None:
            parked = self.parked[group] = SortedList()
        parked.add(entry)
        self.parked_count += 1

    def _promote(self, group: str) -> None:
        """The group's best set-aside job becomes its front."""
        parked = self.parked.get(group)
        if parked is None:
            return
        entry: Entry = parked.pop(0)
        self.parked_count -= 1
        if not parked:
            del self.parked[group]
        self.waiting.add(entry)
        self.fronts[group] = entry

    def _note_wait(self, group: str, now: int, wait: int) -> None:
        if wait > 0:  # blocked until a time: a pull then frees it even before the timer set for it runs
            heapq.heappush(self.timed, (now + wait, group))

    def _full_after_start(self, group: str) -> bool:
        """Whether the start of one more of its jobs fills the group's concurrency (checked before it starts)."""
        return self.groups_active.get(group, 0) + 1 >= _concurrency(self.settings.groups.get(group))

    def free_group(self, group: str, now: int) -> bool:
        """A set-aside group may start a job now: its best job goes back (whether it did)."""
        if group not in self.parked or group in self.fronts:
            return False
        wait = self.group_wait(group, now)
        if wait:
            self._note_wait(group, now, wait)
            return False
        self._promote(group)
        return True

    def wake_timed(self, now: int) -> None:
        """Free the groups set aside until a time that has come (their timers may not have run yet)."""
        timed = self.timed
        while timed and timed[0][0] <= now:
            self.free_group(heapq.heappop(timed)[1], now)

    def group_wait(self, group: str, now: int) -> int:
        """0 when a job of `group` may start now; else `WHEN_FREED`, or the ms until a rate limit lets it."""
        rules = self.settings.groups.get(group)
        if (rules is not None and rules.paused) or self.groups_active.get(group, 0) >= _concurrency(rules):
            return WHEN_FREED
        wait = self._held(group, now) if self.group_holds else 0
        window = self.group_windows.get(group)
        if window is not None and rules is not None and rules.rate_limit is not None:
            most, duration = rules.rate_limit
            end = window[0] + duration
            if now >= end:
                del self.group_windows[group]
            elif window[1] >= most:
                wait = max(wait, end - now)
        return wait

    def _held(self, group: str, now: int) -> int:
        until = self.group_holds.get(group)
        if until is None:
            return 0
        if until <= now:
            del self.group_holds[group]
            return 0
        return until - now

    def group_started(self, group: str, now: int) -> int | None:
        """A job of a group with settings became active: count it in its rate window. Returns when the window
        ends if this start filled it (the group is held until then)."""
        rules = self.settings.groups.get(group)
        if rules is None or rules.rate_limit is None:
            return None
        most, duration = rules.rate_limit
        window = self.group_windows.get(group)
        if window is None or now >= window[0] + duration:
            window = self.group_windows[group] = [now, 0]
        window[1] += 1
        return window[0] + duration if window[1] >= most else None

    def group_ttl(self, group: str, now: int, max_jobs: int | None) -> int:
        """ms until the group may start jobs again by its rate limit or hold (-2: neither is in force; 0: its
        window has started fewer than `max_jobs`), as bunqueue's `GetGroupRateLimitTtl` answers."""
        held = self._held(group, now)
        if held:
            return held
        window = self.group_windows.get(group)
        rules = self.settings.groups.get(group)
        if window is None or rules is None or rules.rate_limit is None or now >= window[0] + rules.rate_limit[1]:
            return -2
        if max_jobs is not None and window[1] < max_jobs:
            return 0
        return window[0] + rules.rate_limit[1] - now

    # ---- leaving --------------------------------------------------------------------------------

    def unschedule(self, job: Job) -> None:
        """Take a waiting, delayed or dependent job out of its structure (before it moves elsewhere); it
        is marked removed meanwhile, so a second call, or a timer set for it, finds nothing to do."""
        match job.state:
            case State.WAITING:
                self.unlink_waiting(job)
            case State.DELAYED:
                self.unlink_delayed(job)
            case State.WAITING_CHILDREN:
                self.dependents.pop(job.id, None)
            case State.ACTIVE | State.COMPLETED | State.FAILED | State.EXPIRED | State.REMOVED:
                return
            case _:
                assert_never(job.state)
        job.state = State.REMOVED

    # ---- limits ---------------------------------------------------------------------------------

    def room(self, now: int, wanted: int) -> int:
        """How many jobs a pull may take now under the queue's concurrency and rate limits."""
        room = wanted
        limit = self.settings.concurrency
        if limit is not None:
            room = min(room, max(0, limit - len(self.active)))
        rate = self.settings.rate_limit
        if rate is not None:
            pulls = self.pulls
            while pulls and pulls[0] <= now - RATE_WINDOW_MS:
                pulls.popleft()
            room = min(room, max(0, rate - len(pulls)))
        return room

    def rate_limit_ttl(self, now: int, max_jobs: int | None = None) -> int:
        """-2 with no rate limit; 0 while its window holds fewer pulls than the limit (or `max_jobs`); else the
        ms until enough of them leave the window for one more (bunqueue's `getRateLimitTtl`)."""
        rate = self.settings.rate_limit
        if rate is None:
            return -2
        full = max(1, rate if max_jobs is None else max_jobs)
        recent = [t for t in self.pulls if t > now - RATE_WINDOW_MS]  # at most the limit's worth, read rarely
        if len(recent) < full:
            return 0
        return recent[len(recent) - full] + RATE_WINDOW_MS - now

    def maxed(self) -> bool:
        """Whether the active jobs fill the concurrency limit (a pull gets nothing until one finishes)."""
        limit = self.settings.concurrency
        return limit is not None and len(self.active) >= limit

    def record_pull(self, now: int) -> None:
        if self.settings.rate_limit is not None:
            self.pulls.append(now)

    # ---- reporting ------------------------------------------------------------------------------

    @property
    def waiting_count(self) -> int:
        return len(self.waiting) + self.parked_count

    def counts(self) -> QueueCounts:
        waiting = self.waiting_count
        return QueueCounts(
            waiting=waiting,
            prioritized=waiting - self.priorities.get(0, 0),
            delayed=len(self.delayed),
            active=len(self.active),
            completed=self.completed,
            failed=len(self.dlq),
            waiting_children=len(self.dependents),
            paused=waiting if self.settings.paused else 0,
        )

    def total(self) -> int:
        return (
            self.waiting_count
            + len(self.delayed)
            + len(self.active)
            + self.completed
            + len(self.dlq)
            + len(self.dependents)
        )

    def is_idle_ghost(self) -> bool:
        """A queue nobody pushed to, left behind by pulls that timed out: safe to forget."""
        return not self.known and not self.total() and not self.waiters and not self.group_holds

    def describe(self) -> dict[str, Any]:
        return {"queue": self.name, **msgspec.to_builtins(self.counts())}


def _uncount(counts: collections.Counter[int], priority: int) -> None:
    """One job of `priority` fewer; a priority with none left leaves the counter."""
    left = counts[priority] - 1
    if left > 0:
        counts[priority] = left
    else:
        del counts[priority]
