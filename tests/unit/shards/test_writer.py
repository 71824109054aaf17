"""The shard's writer thread: batches commit in order and together, replies wait for their commit, a
failed batch is answered as failed and written again, and nothing reads a state the disk has not caught."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bunq import protocol as p
from shards import commits
from shards.engine import Engine
from shards.store import Batch, Store
from shards.writer import Task, Writer
from tests.support.clock import FakeClock
from tests.support.engines import JOB, make_engine, push


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine whose every flush goes to the writer (none is small enough to be written on the loop)."""
    monkeypatch.setattr(commits, "WRITE_HERE_BELOW", 0)
    engine = make_engine(tmp_path / "s.db", FakeClock())
    writer = Writer(str(tmp_path / "s.db"))
    engine.commits.writer = engine.store.writer = writer
    yield engine
    engine.flush()
    writer.stop()
    engine.store.close()


def hold(writer: Writer) -> threading.Event:
    """Stop the writer at its next item until the returned event is set."""
    release = threading.Event()
    writer.inbox.put(Task(lambda store: release.wait()))
    return release


def wait_written(engine: Engine) -> None:
    while engine.commits.in_flight:
        engine.flush()


def on_disk(path: Path, job_id: str) -> dict[str, Any] | None:
    store = Store(str(path))
    blob = store.get(job_id)
    store.close()
    return None if blob is None else dict(zip(("id",), msgspec.msgpack.decode(blob)[:1], strict=True))


def test_a_durable_reply_waits_for_the_writer_to_commit(engine: Engine, tmp_path: Path) -> None:
    assert engine.commits.writer is not None
    release = hold(engine.commits.writer)
    replies: list[p.Reply] = []
    engine.handle(p.AddJobs("q", [msgspec.structs.replace(JOB, durable=True)]), replies.append)
    engine.flush_soon()
    assert replies == [] and len(engine.commits.in_flight) == 1
    job_id = next(iter(engine.jobs))
    assert on_disk(tmp_path / "s.db", job_id) is None
    release.set()
    wait_written(engine)
    assert isinstance(replies[0], p.Ids) and replies[0].ids == [job_id]
    assert on_disk(tmp_path / "s.db", job_id) == {"id": job_id}


def test_batches_queued_behind_a_slow_one_commit_together_in_order(engine: Engine) -> None:
    writer = engine.commits.writer
    assert writer is not None
    transactions: list[int] = []
    real = writer.store.write_all

    def counting(batches: list[Batch]) -> None:
        transactions.append(len(batches))
        real(batches)

    writer.store.write_all = counting  # type: ignore[method-assign]
    release = hold(writer)
    first = push(engine)
    engine.flush_soon()
    engine.handle(p.CancelJob(first), lambda reply: None)  # the second batch deletes what the first wrote
    engine.flush_soon()
    assert len(engine.commits.in_flight) == 2
    push(engine)
    engine.flush_soon()  # a third waits in the journal: two are out already
    assert len(engine.commits.in_flight) == 2 and engine.journal.pending() == 1
    release.set()
    wait_written(engine)
    engine.flush()
    assert transactions[0] >= 2 and sum(transactions) == 3  # the batches queued went out in one transaction
    assert engine.store.get(first) is None  # and in order: the delete came after the insert


def test_a_job_deleted_in_a_batch_being_written_is_not_found_on_disk(engine: Engine) -> None:
    job_id = push(engine)
    engine.flush()
    assert engine.commits.writer is not None
    release = hold(engine.commits.writer)
    engine.handle(p.CancelJob(job_id), lambda reply: None)
    engine.flush_soon()
    assert engine.store.get(job_id) is not None  # the database has not caught up yet
    assert engine.index.find(job_id) is None  # but the shard answers as it will be
    release.set()
    wait_written(engine)


def test_a_batch_that_fails_is_answered_as_failed_and_written_again(engine: Engine) -> None:
    writer = engine.commits.writer
    assert writer is not None
    real = writer.store.write_all
    failures = [RuntimeError("disk on fire")]

    def failing_once(batches: list[Batch]) -> None:
        if failures:
            raise failures.pop()
        real(batches)

    writer.store.write_all = failing_once  # type: ignore[method-assign]
    replies: list[p.Reply] = []
    engine.handle(p.AddJobs("q", [msgspec.structs.replace(JOB, durable=True)]), replies.append)
    job_id = next(iter(engine.jobs))
    engine.flush()
    assert replies == [p.Error("internal", "Failed to persist job")]
    assert job_id in engine.journal.dirty  # recorded again, for the next flush
    engine.flush()
    assert engine.store.get(job_id) is not None


def test_obliterate_runs_on_the_writer_after_the_batches_before_it(engine: Engine) -> None:
    job_id = push(engine)
    engine.flush_soon()
    engine.handle(p.ObliterateQueue("q"), lambda reply: None)
    engine.flush()
    assert engine.store.get(job_id) is None


def test_a_small_window_with_nothing_in_flight_is_written_on_the_loop(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "s.db", FakeClock())
    writer = Writer(str(tmp_path / "s.db"))
    engine.commits.writer = engine.store.writer = writer
    try:
        release = hold(writer)  # the writer's thread is busy: the write cannot be going through it
        replies: list[p.Reply] = []
        engine.handle(p.AddJobs("q", [msgspec.structs.replace(JOB, durable=True)]), replies.append)
        engine.flush_soon()
        job_id = next(iter(engine.jobs))
        assert isinstance(replies[0], p.Ids) and not engine.commits.in_flight
        assert on_disk(tmp_path / "s.db", job_id) == {"id": job_id}
        release.set()
    finally:
        writer.stop()
        engine.store.close()


def test_a_flush_fails_loudly_when_the_writer_thread_is_gone(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = engine.commits.writer
    assert writer is not None
    release = hold(writer)
    push(engine)
    engine.flush_soon()
    monkeypatch.setattr(writer, "is_alive", lambda: False)  # as if it had died with the batch
    with pytest.raises(RuntimeError, match="writer thread is gone"):
        engine.flush()
    monkeypatch.undo()
    release.set()
    wait_written(engine)
