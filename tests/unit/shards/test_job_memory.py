"""A shard's jobs hold nothing the garbage collector walks: with millions of live jobs, every tracked
container among them would lengthen each full collection (a pause of the shard's loop) and cost memory."""

from __future__ import annotations

import enum
import gc
from pathlib import Path

import msgspec

from bunq import protocol as p
from shards.engine import Engine
from shards.job import Job
from tests.support.clock import FakeClock
from tests.support.engines import ack, call, make_engine, pull, push


def tracked_parts(job: Job) -> list[str]:
    """The job's own fields (and the job itself) that the collector still tracks after a full collection;
    enumeration members are shared by every job, not part of one."""
    gc.collect()
    found = ["job"] if gc.is_tracked(job) else []
    values = ((name, getattr(job, name)) for name in job.__struct_fields__)
    return found + [name for name, value in values if gc.is_tracked(value) and not isinstance(value, enum.Enum)]


def test_jobs_in_every_shape_and_state_hold_no_tracked_container(tmp_path: Path) -> None:
    clock = FakeClock()
    engine: Engine = make_engine(tmp_path / "s.db", clock)
    tagged = push(engine, tags=("a", "b"), unique_key="u", repeat=b'{"every":1000}')
    child = push(engine, queue="c")
    parent = push(engine, queue="p", depends_on=(child,))
    assert {pull(engine, queue="c")[0]["id"]} == {child}
    ack(engine, child, b'{"r":1}')
    engine.tick()
    for job_id in (tagged, child, parent):
        job = engine.index.find(job_id)
        assert job is not None
        assert tracked_parts(job) == [], job_id
    assert engine.index.find(parent).children == {child: b'{"r":1}'}  # type: ignore[union-attr]


def test_a_job_decoded_from_storage_holds_no_tracked_container(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "s.db", FakeClock())
    job_id = push(engine, tags=("x",), depends_on=("missing-dependency",))
    engine.flush()
    restarted = make_engine(tmp_path / "s.db", FakeClock())
    job = restarted.index.find(job_id)
    assert job is not None and job.tags == ("x",) and job.pending_deps == ("missing-dependency",)
    assert tracked_parts(job) == []
    reply = call(restarted, p.GetJob(job_id))
    assert isinstance(reply, p.JobDoc)
    assert msgspec.json.decode(reply.job)["tags"] == ["x"]
