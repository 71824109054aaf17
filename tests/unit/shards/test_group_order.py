"""How a blocked group's jobs are set aside and come back, on a fake clock: the order they come back in (across
groups, by priority, FIFO and LIFO, new jobs among set-aside ones), every operation on a set-aside job, and
that draining a large group never sets its jobs aside one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sortedcontainers import SortedList

from bunq import protocol as p
from bunq.routing import slot_of
from shards.engine import Engine
from shards.store import Store
from tests.support.clock import FakeClock
from tests.support.engines import ack, call, counts, make_engine, pull, push


def ids(jobs: list[dict[str, object]]) -> list[object]:
    return [j["id"] for j in jobs]


def listed(engine: Engine, offset: int = 0, limit: int = 100) -> list[object]:
    reply = call(engine, p.ListJobs("q", p.State.WAITING, limit, offset))
    assert isinstance(reply, p.Jobs)
    return [job.decode().split('"id":"', 1)[1].split('"', 1)[0] for job in reply.jobs]


def blocked(engine: Engine) -> None:
    """A pull that meets the blocked groups (and sets their jobs aside) but gets nothing."""
    assert pull(engine, count=10) == []


def one_by_one(engine: Engine, first: str) -> list[object]:
    """Ack `first`, then pull and ack one job at a time until the queue has none: the order they came in."""
    order: list[object] = []
    ack(engine, first)
    while jobs := pull(engine):
        order += ids(jobs)
        ack(engine, str(jobs[0]["id"]))
    return order


def test_freed_groups_come_back_in_key_order_among_each_other_and_ungrouped_jobs(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    b1 = push(engine, group_id="b")
    assert ids(pull(engine, count=10)) == [a1, b1]
    b2 = push(engine, group_id="b")
    x1 = push(engine)
    a2 = push(engine, group_id="a")
    a3 = push(engine, group_id="a")
    x2 = push(engine)
    assert ids(pull(engine)) == [x1]  # b2 and a2 are set aside on the way
    ack(engine, a1)
    ack(engine, b1)
    assert ids(pull(engine, count=10)) == [b2, a2, x2]  # a3 waits for a2
    assert listed(engine) == [a3]


def test_a_blocked_group_hands_out_by_priority_then_fifo_with_jobs_pushed_before_and_after_it_blocked(
    engine: Engine,
) -> None:
    a1 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    a2 = push(engine, group_id="a")
    a3 = push(engine, group_id="a", priority=5)
    blocked(engine)
    a4 = push(engine, group_id="a", priority=5)  # joins the set-aside jobs, after a3
    a5 = push(engine, group_id="a", priority=9)  # ahead of all of them
    a6 = push(engine, group_id="a", priority=1)
    assert listed(engine) == [a5, a3, a4, a6, a2]
    assert one_by_one(engine, a1) == [a5, a3, a4, a6, a2]


def test_lifo_jobs_of_a_blocked_group_go_ahead_within_their_priority(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    a2 = push(engine, group_id="a")
    blocked(engine)
    a3 = push(engine, group_id="a", lifo=True)
    a4 = push(engine, group_id="a", lifo=True)
    a5 = push(engine, group_id="a", priority=2)
    assert one_by_one(engine, a1) == [a5, a4, a3, a2]


def test_a_better_job_pushed_to_a_group_not_yet_blocked_goes_first(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    a2 = push(engine, group_id="a")
    a3 = push(engine, group_id="a", priority=3)
    x1 = push(engine, priority=1)
    assert ids(pull(engine, count=10)) == [a3, x1]
    assert one_by_one(engine, a3) == [a1, a2]


def test_a_set_aside_job_can_be_cancelled_discarded_or_reprioritised(engine: Engine) -> None:
    a = [push(engine, group_id="a") for _ in range(6)]
    assert ids(pull(engine)) == [a[0]]
    blocked(engine)
    assert call(engine, p.CancelJob(a[2])) == p.Done()
    assert call(engine, p.DiscardJob(a[3])) == p.Done()
    assert call(engine, p.ChangePriority(a[5], 7)) == p.Done()
    assert (counts(engine)["waiting"], counts(engine)["failed"]) == (3, 1)
    assert listed(engine) == [a[5], a[1], a[4]]
    assert listed(engine, offset=1, limit=1) == [a[1]]
    assert one_by_one(engine, a[0]) == [a[5], a[1], a[4]]
    assert counts(engine)["waiting"] == 0


def test_cancelling_a_groups_front_brings_its_next_job_forward(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    a2 = push(engine, group_id="a")
    x1 = push(engine)
    assert call(engine, p.CancelJob(a1)) == p.Done()
    assert ids(pull(engine, count=10)) == [a2, x1]


def test_a_delayed_job_promoted_into_a_blocked_group_takes_its_place(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    a2 = push(engine, group_id="a")
    blocked(engine)
    a3 = push(engine, group_id="a", delay=60_000, priority=4)
    assert call(engine, p.PromoteJob(a3)) == p.Done()
    assert one_by_one(engine, a1) == [a3, a2]


def test_a_job_that_expires_as_its_group_takes_it_frees_the_group(engine: Engine, clock: FakeClock) -> None:
    push(engine, group_id="a", ttl=100)
    a2 = push(engine, group_id="a")
    clock.advance(100)
    assert ids(pull(engine)) == [a2]
    assert counts(engine)["waiting"] == 0


def test_group_concurrency_above_one_hands_out_in_order_and_refills_per_ack(engine: Engine) -> None:
    call(engine, p.SetGroupConcurrency("q", "a", 2))
    a = [push(engine, group_id="a", priority=i % 2) for i in range(6)]  # priority 1: a1, a3, a5
    b1 = push(engine, group_id="b")
    assert ids(pull(engine, count=10)) == [a[1], a[3], b1]
    blocked(engine)
    ack(engine, a[1])
    assert ids(pull(engine, count=10)) == [a[5]]
    ack(engine, a[3])
    ack(engine, a[5])
    assert ids(pull(engine, count=10)) == [a[0], a[2]]
    call(engine, p.SetGroupConcurrency("q", "a", 3))
    assert ids(pull(engine, count=10)) == [a[4]]


def test_a_rate_limited_group_starts_its_best_jobs_each_window(engine: Engine, clock: FakeClock) -> None:
    call(engine, p.SetGroupConcurrency("q", "a", 10))
    call(engine, p.SetGroupRateLimit("q", "a", 2, 1000))
    a = [push(engine, group_id="a") for _ in range(5)]
    assert ids(pull(engine, count=10)) == [a[0], a[1]]
    a5 = push(engine, group_id="a", priority=1)
    clock.advance(1000)  # no tick: the pull itself sees that the window is over
    assert ids(pull(engine, count=10)) == [a5, a[2]]
    clock.advance(1000)
    engine.tick()
    assert ids(pull(engine, count=10)) == [a[3], a[4]]


def test_pausing_the_queue_keeps_set_aside_jobs_in_order(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    a2, a3 = push(engine, group_id="a"), push(engine, group_id="a")
    blocked(engine)
    call(engine, p.PauseQueue("q"))
    ack(engine, a1)
    assert pull(engine, count=10) == [] and counts(engine)["paused"] == 2
    call(engine, p.ResumeQueue("q"))
    assert ids(pull(engine, count=10)) == [a2]
    assert one_by_one(engine, a2) == [a3]


@pytest.mark.parametrize("how", ["drain", "clean", "obliterate"])
def test_bulk_removal_takes_set_aside_jobs_and_the_group_starts_afresh(engine: Engine, how: str) -> None:
    a1 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    for _ in range(3):
        push(engine, group_id="a")
    blocked(engine)
    command: dict[str, Any] = {
        "drain": p.DrainQueue("q"),
        "clean": p.CleanQueue("q", 0, p.State.WAITING),
        "obliterate": p.ObliterateQueue("q"),
    }
    call(engine, command[how])
    assert counts(engine)["waiting"] == 0 and listed(engine) == []
    if how != "obliterate":
        ack(engine, a1)
    a5 = push(engine, group_id="a")
    a6 = push(engine, group_id="a")
    assert ids(pull(engine, count=10)) == [a5]
    assert one_by_one(engine, a5) == [a6]


def test_set_aside_jobs_come_back_in_order_after_a_restart_and_a_reshard(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s0.db", clock)
    a1 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    a2 = push(engine, group_id="a")
    a3 = push(engine, group_id="a", priority=2)
    blocked(engine)
    engine.flush()
    engine.store.close()
    store = Store(str(tmp_path / "s0.db"))
    store.move_slots(str(tmp_path / "s1.db"), 1 << 20, slot_of("q", 256))
    store.close()
    again = make_engine(tmp_path / "s1.db", clock)
    assert counts(again)["waiting"] == 3  # a1 was active when the shard stopped: it runs again, last
    assert ids(pull(again, count=10)) == [a3]
    assert one_by_one(again, a3) == [a2, a1]


class CountingList(SortedList):  # type: ignore[misc]
    """The waiting list, counting what goes in."""

    added = 0

    def add(self, value: Any) -> None:
        self.added += 1
        super().add(value)


def test_a_large_group_drains_without_its_jobs_coming_back_one_by_one(engine: Engine) -> None:
    n = 20_000
    q = engine.queue("q")
    q.waiting = CountingList()
    call(engine, p.AddJobs("q", [p.NewJob(data=str(i).encode(), group_id="a") for i in range(n)]))
    done = []
    while jobs := pull(engine):
        assert pull(engine) == [] and len(q.waiting) == 0  # the busy group has nothing where pulls look
        done.append(jobs[0]["data"])
        ack(engine, str(jobs[0]["id"]))
        assert len(q.waiting) <= 1  # only its next job went back
    assert done == list(range(n))
    assert q.waiting.added == n  # each job entered the waiting list once
