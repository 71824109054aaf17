"""Jobs that leave: expired jobs (discarded, across restarts), `clean` at grace 0, and the memory that
drain, clean and obliterate must give back at once."""

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


def test_an_expired_job_is_discarded_and_stays_gone_across_restarts(tmp_path: Path) -> None:
    clock = FakeClock()
    events = Recorder()
    engine = make_engine(tmp_path / "s.db", clock, events=events)
    job_id = push(engine, ttl=1000, unique_key="once")
    parent = push(engine, depends_on=[job_id])
    call(engine, p.AddLog(job_id, "queued"))
    clock.advance(1000)
    engine.tick()
    engine.flush()
    assert state(engine, job_id) == "unknown"  # the spec: "discarded if not processed within this window"
    assert call(engine, p.GetJob(job_id)) == p.Error("not_found", "Job not found")
    assert engine.store.get(job_id) is None and job_id not in engine.index.finished
    assert events.names().count("job:expired") == 1

    for _ in range(3):  # every restart finds nothing of it and changes nothing
        restarted = make_engine(tmp_path / "s.db", clock, events=events)
        clock.advance(5000)
        restarted.tick()
        assert state(restarted, job_id) == "unknown"
        assert counts(restarted)["waiting"] == 0
        assert pull(restarted, count=10) == []
        restarted.flush()
    assert events.names().count("job:expired") == 1
    assert state(restarted, parent) == "failed"  # its dependency failed for good, once
    assert events.names().count("dlq:added") == 1
    assert push(restarted, unique_key="once") != job_id  # the key was freed with the expiry


def test_expired_records_an_earlier_version_kept_are_dropped_at_start(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = make_engine(tmp_path / "s.db", clock)
    job_id = push(engine)
    engine.flush()
    job = engine.index.find(job_id)
    assert job is not None
    job.state = State.EXPIRED  # as versions that kept expired jobs wrote them
    engine.journal.put(job)
    engine.flush()
    assert engine.store.get(job_id) is not None
    restarted = make_engine(tmp_path / "s.db", clock)
    assert restarted.store.get(job_id) is None and state(restarted, job_id) == "unknown"


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
