"""Jobs that leave: expired jobs across restarts and their removal, `clean` at grace 0, and the memory
that drain, clean and obliterate must give back at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bunq import protocol as p
from shards.job import State
from shards.sweep import BULK_REMOVAL
from tests.support.clock import FakeClock
from tests.support.engines import Recorder, call, counts, make_engine, pull, push

DAY_MS = 86_400_000


def state(engine: object, job_id: str) -> str:
    reply = call(engine, p.GetJobState(job_id))  # type: ignore[arg-type]
    assert isinstance(reply, p.JobState)
    return reply.state


def test_an_expired_job_stays_expired_across_restarts(tmp_path: Path) -> None:
    clock = FakeClock()
    events = Recorder()
    engine = make_engine(tmp_path / "s.db", clock, events=events)
    job_id = push(engine, ttl=1000, unique_key="once")
    parent = push(engine, depends_on=[job_id])
    clock.advance(1000)
    engine.tick()
    engine.flush()
    assert state(engine, job_id) == "expired"
    assert events.names().count("job:expired") == 1

    for _ in range(3):  # every restart reads the same expired record and changes nothing
        restarted = make_engine(tmp_path / "s.db", clock, events=events)
        clock.advance(5000)
        restarted.tick()
        assert state(restarted, job_id) == "expired"
        assert job_id not in restarted.jobs
        assert counts(restarted)["waiting"] == 0
        assert pull(restarted, count=10) == []
        restarted.flush()
    assert events.names().count("job:expired") == 1
    assert state(restarted, parent) == "failed"  # its dependency failed for good, once
    assert events.names().count("dlq:added") == 1
    assert push(restarted, unique_key="once") != job_id  # the key was freed with the expiry


def test_expired_jobs_are_cleaned_and_expire_with_the_dlq_max_age(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    call(engine, p.SetDlqConfig("q", max_age=DAY_MS))
    first = push(engine, ttl=10)
    clock.advance(1)
    second = push(engine, ttl=10)
    clock.advance(10)
    engine.tick()
    reply = call(engine, p.CleanQueue("q", grace=0, state=State.EXPIRED, limit=1))
    assert isinstance(reply, p.Count) and reply.ids == [first]
    assert state(engine, first) == "unknown" and state(engine, second) == "expired"

    clock.advance(DAY_MS + 60_000)
    engine.tick()
    assert state(engine, second) == "unknown"
    assert state(make_engine(tmp_path / "s.db", clock), second) == "unknown"


def test_an_expired_job_with_remove_on_fail_is_not_kept(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    job_id = push(engine, ttl=10, remove_on_fail=True)
    clock.advance(10)
    engine.tick()
    engine.flush()
    assert state(engine, job_id) == "unknown"


@pytest.mark.parametrize("target", [State.WAITING, State.DELAYED, None])
def test_clean_with_no_grace_removes_jobs_made_this_millisecond(tmp_path: Path, target: State | None) -> None:
    engine = make_engine(tmp_path / "s.db", FakeClock())  # the clock does not move: all in one millisecond
    for _ in range(3):
        push(engine, delay=0 if target is not State.DELAYED else 60_000)
    reply = call(engine, p.CleanQueue("q", grace=0, state=target, limit=1000))
    assert isinstance(reply, p.Count) and reply.count == 3
    assert counts(engine)["waiting"] == counts(engine)["delayed"] == 0


def test_clean_with_a_grace_keeps_younger_jobs(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    old = push(engine)
    clock.advance(1000)
    push(engine)
    reply = call(engine, p.CleanQueue("q", grace=1000, state=State.WAITING, limit=1000))
    assert isinstance(reply, p.Count) and reply.ids == [old]


def fill(engine: object, n: int) -> None:
    jobs = [p.NewJob(data=b"1", delay=60_000 * (i % 2), ttl=3_600_000) for i in range(n)]
    reply = call(engine, p.AddJobs("big", jobs))  # type: ignore[arg-type]
    assert isinstance(reply, p.Ids)


@pytest.mark.parametrize(
    "command",
    [p.ObliterateQueue("big"), p.DrainQueue("big"), p.CleanQueue("big", 0, None, 1_000_000)],
    ids=["obliterate", "drain", "clean"],
)
def test_removed_jobs_are_let_go_at_once(tmp_path: Path, command: p.Command) -> None:
    """No timer, index or map may keep a removed job alive until its delay or ttl would have come due."""
    engine = make_engine(tmp_path / "s.db", FakeClock())
    n = 2 * BULK_REMOVAL
    fill(engine, n)
    engine.flush()
    assert len(engine.jobs) == n and len(engine.timers) >= n
    call(engine, command)
    assert len(engine.jobs) == 0
    assert len(engine.timers) < 10  # only the shard's own periodic sweeps are left
    assert counts(engine, "big") | {"waiting": 0, "delayed": 0} == counts(engine, "big")


def test_dead_letters_restored_at_start_still_age_out_and_auto_retry(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    call(engine, p.SetDlqConfig("old", max_age=DAY_MS))
    call(engine, p.SetDlqConfig("retry", auto_retry=True, auto_retry_interval=60_000))
    for queue in ("old", "retry"):
        job_id = push(engine, queue, max_attempts=1)
        pull(engine, queue)
        call(engine, p.FailJob(job_id, "boom"))
        assert state(engine, job_id) == "failed"
    engine.flush()

    restarted = make_engine(tmp_path / "s.db", clock)
    clock.advance(60_000)
    restarted.tick()
    assert counts(restarted, "retry")["failed"] == 0 and counts(restarted, "retry")["waiting"] == 1
    clock.advance(DAY_MS)
    restarted.tick()
    assert counts(restarted, "old")["failed"] == 0
