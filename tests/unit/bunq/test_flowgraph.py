"""An atomic flow's graph checked at the front: order, the dependents each job is created with, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from bunq.errors import BadRequest
from bunq.flowgraph import parse
from bunq.protocol import FlowPolicy
from bunq.routing import slot_of


def entry(job_id: str, queue: str = "q", **links: Any) -> dict[str, Any]:
    return {"id": job_id, "queue": queue, "input": {"name": job_id, "data": {}, **links}}


def test_dependencies_come_first_and_each_knows_whom_to_tell() -> None:
    jobs = parse(
        [
            entry("p", "pq", dependsOn=["a", "b"], childrenIds=["a", "b"]),
            entry("a", parentId="p", continueParentOnFailure=True),
            entry("b", parentId="p"),
        ],
        256,
    )
    assert [j.job.job_id for j in jobs] == ["a", "b", "p"]
    a, b, p = jobs
    assert a.dependents == ((("p", slot_of("pq", 256)),)) and b.dependents == a.dependents
    assert a.policy is FlowPolicy.CONTINUE and b.policy is None and p.dependents == ()
    assert p.children_ids == ("a", "b") and p.job.depends_on == ("a", "b") and a.parent_id == "p"


@pytest.mark.parametrize(
    ("jobs", "error"),
    [
        ([entry("a", dependsOn=["x"])], "flow dependency not found: x"),
        ([entry("a", dependsOn=["a"])], "flow job cannot depend on itself: a"),
        ([entry("a", parentId="p"), entry("p", dependsOn=["a"])], "flow parent p does not own child a"),
        ([entry("a"), entry("p", dependsOn=["a"], childrenIds=["a"])], "flow child a does not point back to parent p"),
        ([entry("a", childrenIds=["b"]), entry("b", parentId="a")], "flow child is missing from dependencies: b"),
        ([entry("a", dependsOn=["b"]), entry("b", dependsOn=["a"])], "flow contains a dependency cycle"),
        ([entry("a", ignoreDependencyOnFailure=True)], "a flow failure policy requires a parent"),
        ([entry("a:b")], "flow job id cannot contain a colon"),
        ([entry("a", uniqueKey="k")], "deduplication is not supported inside an atomic flow"),
        ([{**entry("a"), "input": {"data": {}, "customId": "z"}}], "custom id does not match planned id: a"),
        ([{**entry("a"), "input": {"data": [1]}}], "flow job data must be an object"),
        ([{**entry("a"), "input": {"data": {}, "priority": 1.5}}], "flow jobs[0]: priority must be an integer"),
    ],
)
def test_a_bad_graph_is_refused_with_the_reference_s_words(jobs: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse(jobs, 256)
    assert refused.value.message == error
