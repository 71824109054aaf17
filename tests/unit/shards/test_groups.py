"""Group limits in the engine, on a fake clock: pause, concurrency, rate windows and holds, the order a freed
group's jobs come back in, long polls a freed group serves, and the settings across restarts and reshards."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bunq import protocol as p
from bunq.routing import slot_of
from shards.engine import Engine
from shards.store import Batch, Store
from tests.support.clock import FakeClock
from tests.support.engines import ack, call, make_engine, pull, push


def ids(jobs: list[dict[str, object]]) -> list[object]:
    return [j["id"] for j in jobs]


def group(engine: Engine, name: str = "a", queue: str = "q", max_jobs: int | None = None) -> p.GroupInfo:
    reply = call(engine, p.GetGroup(queue, name, max_jobs))
    assert isinstance(reply, p.GroupInfo)
    return reply


def test_a_paused_group_is_passed_over_and_comes_back_in_order_when_resumed(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    b1 = push(engine, group_id="b")
    a2 = push(engine, group_id="a", priority=5)
    assert call(engine, p.PauseGroup("q", "a")) == p.Changed(True)
    assert call(engine, p.PauseGroup("q", "a")) == p.Changed(False)
    plain = push(engine)
    assert ids(pull(engine, count=10)) == [b1, plain]
    a3 = push(engine, group_id="a", priority=5)  # pushed while the others are set aside
    assert pull(engine, count=10) == []
    assert group(engine).paused and group(engine).queued == 3
    assert call(engine, p.SetGroupConcurrency("q", "a", 3)) == p.Changed(True)
    assert call(engine, p.ResumeGroup("q", "a")) == p.Changed(True)
    assert call(engine, p.ResumeGroup("q", "a")) == p.Changed(False)
    assert ids(pull(engine, count=10)) == [a2, a3, a1]  # priority first, then the order they were pushed in


def test_a_paused_group_lets_its_active_job_finish_and_starts_no_other(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    a2 = push(engine, group_id="a")
    assert ids(pull(engine)) == [a1]
    call(engine, p.PauseGroup("q", "a"))
    ack(engine, a1)
    assert pull(engine) == []
    call(engine, p.ResumeGroup("q", "a"))
    assert ids(pull(engine)) == [a2]


def test_resuming_a_group_serves_a_parked_long_poll(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    call(engine, p.PauseGroup("q", "a"))
    replies: list[p.Reply] = []
    engine.handle(p.PullJobs("q", 1, timeout_ms=5000), replies.append)
    assert replies == []
    call(engine, p.ResumeGroup("q", "a"))
    assert len(replies) == 1 and isinstance(replies[0], p.Jobs) and len(replies[0].jobs) == 1
    assert a1.encode() in replies[0].jobs[0]


def test_group_concurrency_lets_that_many_run_and_frees_one_slot_per_end(engine: Engine) -> None:
    a = [push(engine, group_id="a") for _ in range(5)]
    b1 = push(engine, group_id="b")
    call(engine, p.SetGroupConcurrency("q", "a", 3))
    assert ids(pull(engine, count=10)) == [a[0], a[1], a[2], b1]  # b keeps the default: one at a time
    assert group(engine).active == 3 and group(engine).queued == 2
    ack(engine, a[1])
    assert ids(pull(engine, count=10)) == [a[3]]
    call(engine, p.SetGroupConcurrency("q", "a", None))  # back to one at a time: nothing more until two end
    ack(engine, a[0])
    ack(engine, a[2])
    assert pull(engine, count=10) == []
    ack(engine, a[3])
    assert ids(pull(engine, count=10)) == [a[4]]


def test_raising_a_group_concurrency_frees_its_waiting_jobs_at_once(engine: Engine) -> None:
    a = [push(engine, group_id="a") for _ in range(3)]
    assert ids(pull(engine, count=10)) == [a[0]]
    call(engine, p.SetGroupConcurrency("q", "a", 2))
    assert ids(pull(engine, count=10)) == [a[1]]


def test_group_rate_limit_caps_starts_per_window_and_a_timer_ends_it(engine: Engine, clock: FakeClock) -> None:
    a = [push(engine, group_id="a") for _ in range(5)]
    plain = push(engine)
    call(engine, p.SetGroupConcurrency("q", "a", 10))
    assert call(engine, p.SetGroupRateLimit("q", "a", 2, 1000)) == p.Changed(True)
    assert ids(pull(engine, count=10)) == [a[0], a[1], plain]
    assert group(engine).rate_limit == (2, 1000) and group(engine).rate_limit_ttl == 1000
    assert group(engine, max_jobs=3).rate_limit_ttl == 0  # fewer than 3 started in this window
    clock.advance(999)
    engine.tick()
    assert pull(engine, count=10) == []
    replies: list[p.Reply] = []
    engine.handle(p.PullJobs("q", 10, timeout_ms=5000), replies.append)
    clock.advance(1)
    engine.tick()  # the window's end puts a's jobs back and serves the parked pull
    assert len(replies) == 1 and isinstance(replies[0], p.Jobs) and len(replies[0].jobs) == 2
    assert [a[2].encode() in replies[0].jobs[0], a[3].encode() in replies[0].jobs[1]] == [True, True]
    assert call(engine, p.SetGroupRateLimit("q", "a", None)) == p.Changed(True)
    assert call(engine, p.SetGroupRateLimit("q", "a", None)) == p.Changed(False)
    assert ids(pull(engine, count=10)) == [a[4]]
    assert group(engine).rate_limit is None and group(engine).rate_limit_ttl == -2


def test_rate_limit_group_holds_it_for_the_duration(engine: Engine, clock: FakeClock) -> None:
    a1 = push(engine, group_id="a")
    b1 = push(engine, group_id="b")
    assert call(engine, p.RateLimitGroup("q", "a", 500)) == p.Done()
    assert ids(pull(engine, count=10)) == [b1]
    assert group(engine).rate_limit_ttl == 500
    clock.advance(500)
    engine.tick()
    assert ids(pull(engine, count=10)) == [a1]
    assert group(engine).rate_limit_ttl == -2


def test_a_group_freed_by_time_before_its_timer_runs_keeps_its_order(engine: Engine, clock: FakeClock) -> None:
    a1 = push(engine, group_id="a")
    call(engine, p.RateLimitGroup("q", "a", 500))
    assert pull(engine) == []  # a1 is set aside
    a2 = push(engine, group_id="a")
    clock.advance(600)  # no tick: the hold is over but its timer has not run
    assert ids(pull(engine, count=10)) == [a1]
    ack(engine, a1)
    assert ids(pull(engine, count=10)) == [a2]


def test_group_counts_take_waiting_and_delayed_jobs(engine: Engine, clock: FakeClock) -> None:
    a1 = push(engine, group_id="a")
    push(engine, group_id="a")
    push(engine, group_id="a", delay=10_000)
    push(engine, group_id="b")
    push(engine)
    assert (group(engine).queued, group(engine).active) == (3, 0)
    assert call(engine, p.CountGroupedJobs("q")) == p.Count(4)
    assert ids(pull(engine)) == [a1]
    assert (group(engine).queued, group(engine).active) == (2, 1)
    call(engine, p.DrainQueue("q"))
    assert (group(engine).queued, group(engine).active) == (0, 1)
    assert call(engine, p.CountGroupedJobs("q")) == p.Count(0)
    assert group(engine, "nobody", "nowhere") == p.GroupInfo(0, 0, False, None, None, -2)


def test_group_settings_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    a1 = push(engine, group_id="a")
    b1 = push(engine, group_id="b")
    call(engine, p.PauseGroup("q", "a"))
    call(engine, p.SetGroupConcurrency("q", "b", 2))
    call(engine, p.SetGroupRateLimit("q", "b", 5, 60_000))
    engine.flush()
    engine.store.close()
    again = make_engine(tmp_path / "s.db", clock)
    assert group(again).paused
    assert (group(again, "b").concurrency, group(again, "b").rate_limit) == (2, (5, 60_000))
    assert ids(pull(again, count=10)) == [b1]
    call(again, p.ResumeGroup("q", "a"))
    assert ids(pull(again, count=10)) == [a1]


def test_group_settings_move_with_their_queue_on_resharding(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s0.db", clock)
    call(engine, p.PauseGroup("q", "a"))
    engine.flush()
    engine.store.close()
    store = Store(str(tmp_path / "s0.db"))
    store.move_slots(str(tmp_path / "s1.db"), 1 << 20, slot_of("q", 256))  # every slot but q's stays
    store.close()
    assert not group(make_engine(tmp_path / "s0.db", clock)).paused
    assert group(make_engine(tmp_path / "s1.db", clock)).paused


def test_settings_written_before_groups_existed_still_load(tmp_path: Path, clock: FakeClock) -> None:
    old = {"paused": True, "rate_limit": None, "concurrency": 4, "stall": {}, "dlq": {}}
    store = Store(str(tmp_path / "s.db"))
    store.write(Batch(queues=[("q", slot_of("q", 256), msgspec.msgpack.encode(old))]))
    store.close()
    engine = make_engine(tmp_path / "s.db", clock)
    assert engine.queues["q"].settings.concurrency == 4 and engine.queues["q"].settings.groups == {}
