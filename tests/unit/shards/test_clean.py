"""`clean` of waiting and delayed jobs: oldest first, up to the limit, set-aside (grouped) jobs included."""

from __future__ import annotations

from pathlib import Path

from bunq import protocol as p
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import call, counts, make_engine, pull, push


def clean(engine: Engine, grace: int, state: p.State, limit: int = 1000) -> list[str]:
    reply = call(engine, p.CleanQueue("q", grace, state, limit))
    assert isinstance(reply, p.Count) and reply.count == len(reply.ids)
    return reply.ids


def test_waiting_jobs_are_cleaned_oldest_first_set_aside_ones_too(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    running = push(engine, priority=9, group_id="g")
    oldest = push(engine, priority=1)
    clock.advance(10)
    grouped = push(engine, group_id="g")
    lifo = push(engine, lifo=True)  # same millisecond as `grouped`, pushed after it: younger
    clock.advance(10)
    taken = push(engine)
    clock.advance(100)
    fresh = push(engine)
    assert [j["id"] for j in pull(engine)] == [running]  # group g is busy from here
    assert [j["id"] for j in pull(engine)] == [oldest]
    assert [j["id"] for j in pull(engine)] == [lifo]
    assert [j["id"] for j in pull(engine)] == [taken]  # `grouped` was set aside on the way
    assert engine.queue("q").parked_count == 1
    assert clean(engine, 50, p.State.WAITING, limit=5) == [grouped]
    assert engine.queue("q").parked_count == 0
    assert clean(engine, 0, p.State.WAITING) == [fresh]
    assert counts(engine)["waiting"] == 0


def test_waiting_jobs_are_cleaned_by_age_whatever_their_priority(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    ids = []
    for priority in (0, 5, 1, 9):
        ids.append(push(engine, priority=priority))
        clock.advance(5)
    assert clean(engine, 1, p.State.WAITING, limit=3) == ids[:3]
    assert [j["id"] for j in pull(engine)] == [ids[3]]


def test_delayed_jobs_are_cleaned_by_age_not_by_run_time(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    first = push(engine, delay=90_000)
    clock.advance(5)
    second = push(engine, delay=1_000)
    clock.advance(5)
    third = push(engine, delay=50_000)
    assert clean(engine, 3, p.State.DELAYED, limit=2) == [first, second]
    assert counts(engine)["delayed"] == 1 and engine.index.find(third) is not None
