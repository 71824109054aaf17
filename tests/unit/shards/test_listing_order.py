"""A queue's listing in each state's own order, oldest first or newest first (bunqueue's `GetJobs asc`),
paged from either end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bunq import protocol as p
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import ack, call, make_engine, pull, push


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(tmp_path / "s.db", FakeClock())
    for n in range(4):  # w0..w3 pushed, w0 and w1 pulled and acked, d0 delayed
        push(engine, "q", job_id=f"w{n}")
    for _ in range(2):
        [job] = pull(engine, "q")
        ack(engine, str(job["id"]))
    push(engine, "q", job_id="d0", delay=60_000)
    return engine


def listed(engine: Engine, state: p.State | None, asc: bool | None, limit: int = 100, offset: int = 0) -> list[str]:
    reply = call(engine, p.ListJobs("q", state, limit, offset, asc))
    assert isinstance(reply, p.Jobs)
    return [json.loads(job)["customId"] for job in reply.jobs]


def test_each_state_in_its_own_order_unless_asked(engine: Engine) -> None:
    assert listed(engine, p.State.WAITING, None) == ["w2", "w3"]
    assert listed(engine, p.State.COMPLETED, None) == ["w1", "w0"]  # newest first, as before
    assert listed(engine, p.State.WAITING, True) == ["w2", "w3"]
    assert listed(engine, p.State.WAITING, False) == ["w3", "w2"]
    assert listed(engine, p.State.COMPLETED, True) == ["w0", "w1"]
    assert listed(engine, p.State.COMPLETED, False) == ["w1", "w0"]


def test_pages_come_from_the_end_asked_for(engine: Engine) -> None:
    assert listed(engine, p.State.WAITING, False, limit=1) == ["w3"]
    assert listed(engine, p.State.WAITING, False, limit=1, offset=1) == ["w2"]
    assert listed(engine, p.State.WAITING, False, limit=5, offset=2) == []
    everything = listed(engine, None, True)
    assert everything == ["w2", "w3", "d0", "w0", "w1"]  # waiting, delayed, completed (oldest first)
    assert listed(engine, None, False) == everything[::-1]
    assert listed(engine, None, False, limit=2, offset=1) == everything[::-1][1:3]
    assert listed(engine, None, True, limit=2, offset=2) == everything[2:4]
