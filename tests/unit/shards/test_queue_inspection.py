"""The shard's answers to bunqueue's inspection commands on a fake clock: where a queue stands against its
limits, DLQ figures that depend on time, removing one DLQ entry, and unique keys freed for good."""

from __future__ import annotations

from pathlib import Path

from bunq import protocol as p
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import call, make_engine, pull, push


def limits(engine: Engine, max_jobs: int | None = None) -> p.QueueLimits:
    reply = call(engine, p.GetQueueLimits("q", max_jobs))
    assert isinstance(reply, p.QueueLimits)
    return reply


def test_rate_limit_ttl_is_the_wait_until_the_sliding_window_has_room(engine: Engine, clock: FakeClock) -> None:
    assert limits(engine).rate_limit_ttl == -2  # no rate limit
    call(engine, p.SetRateLimit("q", 2))
    for _ in range(3):
        push(engine)
    assert limits(engine).rate_limit_ttl == 0
    pull(engine)
    clock.advance(300)
    pull(engine)  # the window (1 s) is full: the first pull leaves it 700 ms from now
    assert limits(engine) == p.QueueLimits(2, 700, None, False, 1000)
    assert limits(engine, max_jobs=3).rate_limit_ttl == 0  # fewer than 3 pulls in the window
    assert limits(engine, max_jobs=1).rate_limit_ttl == 1000  # the second pull's, just now
    clock.advance(700)
    assert limits(engine).rate_limit_ttl == 0
    assert len(pull(engine)) == 1  # and a pull indeed fits again


def test_maxed_is_whether_the_active_jobs_fill_the_concurrency_limit(engine: Engine) -> None:
    call(engine, p.SetConcurrency("q", 2))
    push(engine)
    push(engine)
    pull(engine)
    assert limits(engine).maxed is False
    pull(engine)
    assert limits(engine) == p.QueueLimits(None, -2, 2, True, 1000)


def dead_letter(engine: Engine, **fields: object) -> str:
    job_id = push(engine, max_attempts=1, **fields)
    pull(engine)
    call(engine, p.FailJob(job_id, "boom"))
    return job_id


def stats(engine: Engine) -> p.DlqStats:
    reply = call(engine, p.GetDlqStats("q"))
    assert isinstance(reply, p.DlqStats)
    return reply


def test_dlq_stats_count_due_retries_and_entries_past_max_age(engine: Engine, clock: FakeClock) -> None:
    assert stats(engine) == p.DlqStats(0, {}, 0, 0, None, None)
    first = clock.now
    dead_letter(engine)
    clock.advance(5)
    dead_letter(engine)
    reply = stats(engine)
    assert reply == p.DlqStats(2, {"max_attempts_exceeded": 2}, 0, 0, first, first + 5)
    call(engine, p.SetDlqConfig("q", auto_retry=True, auto_retry_interval=60_000, max_age=3_600_000))
    clock.advance(59_996)  # the first entry's retry is due, the second's in 4 ms; their timers have not run
    assert stats(engine).pending_retry == 1
    clock.advance(3_600_000)
    assert (stats(engine).pending_retry, stats(engine).expired) == (2, 2)


def test_removing_one_dlq_entry_is_durable(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    gone, kept = dead_letter(engine), dead_letter(engine)
    assert call(engine, p.RemoveDlqJob("q", gone)) == p.Count(1)
    assert call(engine, p.RemoveDlqJob("q", gone)) == p.Count(0)
    assert call(engine, p.RemoveDlqJob("other", kept)) == p.Count(0)  # another queue's DLQ has no such entry
    engine.flush()
    engine.store.close()
    again = make_engine(tmp_path / "s.db", clock)
    assert stats(again).total == 1
    assert call(again, p.GetJobState(gone)) == p.JobState("unknown")
    assert call(again, p.GetJobState(kept)) == p.JobState("failed")


def test_a_freed_unique_key_stays_free_after_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    held = push(engine, unique_key="k")
    other = push(engine, unique_key="other")
    assert call(engine, p.GetDeduplicationJobId("q", "k")) == p.Ids([held])
    assert call(engine, p.RemoveDeduplicationKey("q", "k")) == p.Count(1)
    assert call(engine, p.RemoveDeduplicationKey("q", "k")) == p.Count(0)
    assert call(engine, p.RemoveJobDeduplicationKey(other)) == p.Count(1)
    assert call(engine, p.RemoveJobDeduplicationKey(other)) == p.Count(0)
    engine.flush()
    engine.store.close()
    again = make_engine(tmp_path / "s.db", clock)
    assert call(again, p.GetDeduplicationJobId("q", "k")) == p.Ids([])  # not given back to the job by recovery
    fresh = push(again, unique_key="k")
    assert fresh != held and push(again, unique_key="k") == fresh
    assert push(again, unique_key="other") != other
    assert {held, other} <= set(again.jobs)  # the jobs themselves stay
