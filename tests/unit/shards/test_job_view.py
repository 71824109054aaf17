"""A job as clients see it: every field of the rendered JSON carries the job's own value for that field."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from shards.job import FlowLinks, JobView, render
from tests.support.clock import FakeClock
from tests.support.engines import make_engine, push

# JSON field -> the Job attribute it shows
SHOWN = {
    "id": "id", "queue": "queue", "name": "name", "priority": "priority", "createdAt": "created_at",
    "runAt": "run_at", "startedAt": "started_at", "completedAt": "completed_at", "attempts": "attempts",
    "maxAttempts": "max_attempts", "backoff": "backoff", "ttl": "ttl", "timeout": "timeout",
    "progress": "progress", "progressMessage": "progress_message", "tags": "tags", "lifo": "lifo",
    "removeOnComplete": "remove_on_complete", "removeOnFail": "remove_on_fail", "durable": "durable",
    "uniqueKey": "unique_key", "customId": "custom_id", "groupId": "group_id", "dependsOn": "depends_on",
    "stallCount": "stall_count", "lastHeartbeat": "last_heartbeat", "failedReason": "failed_reason",
    "state": "state", "childrenPending": "pending_deps", "repeatCount": "repeat_count",
    "parentId": "parent_id", "childrenIds": "children_ids",
}  # fmt: skip


@pytest.mark.parametrize("bit", [0, 1, 2])  # the four flags get codes 1-4: each pair differs in some round
def test_every_rendered_field_shows_its_own_value(tmp_path: Path, bit: int) -> None:
    engine = make_engine(tmp_path / "s.db", FakeClock())
    job = engine.jobs[push(engine)]
    lifo, on_complete, on_fail, durable = (bool(code >> bit & 1) for code in (1, 2, 3, 4))
    distinct = msgspec.structs.replace(
        job, name="n", priority=7, created_at=101, run_at=102, started_at=103, completed_at=104, attempts=2,
        max_attempts=9, backoff=1234, ttl=5000, timeout=6000, progress=42, progress_message="half",
        tags=("t1", "t2"), lifo=lifo, remove_on_complete=on_complete, remove_on_fail=on_fail, durable=durable,
        unique_key="u", custom_id="c", group_id="g", depends_on=("d1",), stall_count=3, last_heartbeat=105,
        failed_reason="boom", pending_deps=("p1", "p2"), repeat_count=11,
        flow=FlowLinks(parent_id="pa", children_ids=("c1",)), data=b'{"k":1}', repeat=b'{"every":5}',
    )  # fmt: skip
    shown = msgspec.json.decode(render(distinct))
    assert set(shown) == set(JobView.__struct_fields__)
    for field, attribute in SHOWN.items():
        value = getattr(distinct, attribute)
        assert shown[field] == (list(value) if isinstance(value, tuple) else value), field
    assert shown["data"] == {"k": 1} and shown["repeat"] == {"every": 5}
