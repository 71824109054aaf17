"""Queue operations publish their events; queue:counts coalesces per turn and always ends on the last state."""

from __future__ import annotations

from pathlib import Path

from bunq import protocol as p
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import Recorder, call, make_engine, pull, push


def recording_engine(tmp_path: Path) -> tuple[Engine, Recorder]:
    recorder = Recorder()
    engine = make_engine(tmp_path / "s.db", FakeClock(), events=recorder)
    return engine, recorder


def test_queue_operations_publish_their_events(tmp_path: Path) -> None:
    engine, rec = recording_engine(tmp_path)
    push(engine)
    call(engine, p.PauseQueue("q"))
    call(engine, p.ResumeQueue("q"))
    call(engine, p.SetRateLimit("q", 10))
    call(engine, p.SetRateLimit("q", None))
    call(engine, p.SetConcurrency("q", 2))
    call(engine, p.SetConcurrency("q", None))
    call(engine, p.SetStallConfig("q", max_stalls=4))
    call(engine, p.SetDlqConfig("q", max_entries=5))
    call(engine, p.DrainQueue("q"))
    call(engine, p.CleanQueue("q"))
    call(engine, p.ObliterateQueue("q"))
    expected = [
        "queue:created", "job:pushed", "queue:paused", "queue:resumed", "ratelimit:set", "ratelimit:cleared",
        "concurrency:set", "concurrency:cleared", "config:stall-changed", "config:dlq-changed", "queue:drained",
        "queue:cleaned", "queue:obliterated", "queue:removed",
    ]  # fmt: skip
    assert [n for n in rec.names() if n != "job:removed"] == expected
    assert ("queue:drained", {"queue": "q", "count": 1}) in rec.events
    stall = {"stallInterval": 30000, "maxStalls": 4, "gracePeriod": 5000, "enabled": True}
    assert ("config:stall-changed", {"queue": "q", "config": stall}) in rec.events


def test_dlq_events(tmp_path: Path) -> None:
    engine, rec = recording_engine(tmp_path)
    a = push(engine, max_attempts=1)
    b = push(engine, max_attempts=1)
    pull(engine, count=2)
    call(engine, p.FailJob(a, "x"))
    call(engine, p.FailJob(b, "y"))
    call(engine, p.RetryDlq("q", a))
    call(engine, p.RetryDlq("q"))
    pull(engine, count=2)
    call(engine, p.FailJob(a, "x"))
    call(engine, p.PurgeDlq("q"))
    names = rec.names()
    assert names.count("dlq:added") == 3
    assert ("dlq:retried", {"queue": "q", "jobId": a}) in rec.events
    assert ("dlq:retry-all", {"queue": "q", "count": 1}) in rec.events
    assert ("dlq:purged", {"queue": "q", "count": 1}) in rec.events


def test_queue_counts_coalesce_and_end_on_the_last_state(tmp_path: Path) -> None:
    engine, rec = recording_engine(tmp_path)
    engine.publish_counts()  # the first call notices the listener
    for _ in range(5):
        push(engine)
    pull(engine, count=2)
    engine.publish_counts()
    counts = [data for name, data in rec.events if name == "queue:counts"]
    assert len(counts) == 1
    assert counts[-1] | {"queue": "q", "waiting": 3, "active": 2} == counts[-1]
    engine.publish_counts()
    assert len([n for n in rec.names() if n == "queue:counts"]) == 1  # nothing changed, nothing sent


def test_clearing_a_limit_of_a_queue_nobody_used_leaves_it_unlisted(tmp_path: Path) -> None:
    """The event still goes out; the queue is not registered (it was, and `GET /queues` listed it)."""
    engine, rec = recording_engine(tmp_path)
    call(engine, p.SetRateLimit("ghost", None))
    call(engine, p.SetConcurrency("ghost", None))
    assert rec.names() == ["ratelimit:cleared", "concurrency:cleared"]
    assert call(engine, p.ListQueues()) == p.QueueNames([])
    call(engine, p.SetConcurrency("used", 3))  # setting one registers the queue, and clearing it keeps it listed
    call(engine, p.SetConcurrency("used", None))
    assert call(engine, p.ListQueues()) == p.QueueNames(["used"])
    config = call(engine, p.GetQueueConfig("used"))
    assert isinstance(config, p.QueueConfig) and config.concurrency is None
