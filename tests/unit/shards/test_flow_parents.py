"""Flow parents and children inside one shard: what a child's failure policy does to its parent, links made
and undone, an active job sent back to wait for children, and all of it across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bunq import protocol as p
from bunq.protocol import FlowPolicy
from shards.engine import Engine
from shards.handlers.flows import MAX_CHILDREN
from tests.support.clock import FakeClock
from tests.support.engines import call, make_engine, pull, push

SLOT = 0


def add_flow(engine: Engine, parent: str, children: list[str], policy: FlowPolicy | None = None) -> None:
    jobs = [
        p.FlowJob("q", p.NewJob(b"{}", job_id=c, max_attempts=1), parent, policy=policy, dependents=((parent, SLOT),))
        for c in children
    ]
    top = p.FlowJob("pq", p.NewJob(b"{}", job_id=parent, depends_on=tuple(children)), children_ids=tuple(children))
    assert isinstance(call(engine, p.AddFlow([*jobs, top])), p.Jobs)


def fail_next(engine: Engine, error: str = "boom") -> str:
    job_id = str(pull(engine, "q")[0]["id"])
    assert call(engine, p.FailJob(job_id, error)) == p.Done()
    return job_id


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(tmp_path / "s.db", FakeClock())


@pytest.mark.parametrize(
    ("policy", "parent_state", "failed", "ignored"),
    [
        (None, p.State.FAILED, {}, {}),
        (FlowPolicy.FAIL, p.State.FAILED, {}, {}),
        (FlowPolicy.REMOVE, p.State.WAITING_CHILDREN, {}, {}),
        (FlowPolicy.IGNORE, p.State.WAITING_CHILDREN, {}, {"q:c1": "boom"}),
        (FlowPolicy.CONTINUE, p.State.WAITING, {"q:c1": "boom"}, {}),
    ],
)
def test_a_child_s_policy_decides_its_parent_s_fate(
    engine: Engine, policy: FlowPolicy | None, parent_state: p.State, failed: dict[str, str], ignored: dict[str, str]
) -> None:
    add_flow(engine, "P", ["c1", "c2"], policy)
    assert fail_next(engine) == "c1"
    assert engine.index.find("P").state == parent_state  # type: ignore[union-attr]
    assert call(engine, p.GetFlowFailures("P")) == p.Failures(failed)
    assert call(engine, p.GetFlowFailures("P", ignored=True)) == p.Failures(ignored)


@pytest.mark.parametrize(
    "removal",
    [p.CancelJob("c1"), p.DrainQueue("q"), p.ObliterateQueue("q"), p.CleanQueue("q", state=p.State.WAITING)],
    ids=["cancel", "drain", "obliterate", "clean"],
)
def test_a_child_removed_before_it_ran_counts_as_failed_for_its_parent(engine: Engine, removal: p.Command) -> None:
    """It will never complete: its parent follows the child's policy (by default the DLQ) instead of
    waiting for it forever."""
    add_flow(engine, "P", ["c1"])
    call(engine, removal)
    parent = engine.index.find("P")
    assert parent is not None and parent.state == p.State.FAILED


def test_a_cancelled_dependency_follows_the_child_s_policy(engine: Engine) -> None:
    add_flow(engine, "P", ["c1", "c2"], FlowPolicy.REMOVE)
    assert call(engine, p.CancelJob("c1")) == p.Done()
    parent = engine.index.find("P")
    assert parent is not None and parent.state == p.State.WAITING_CHILDREN and parent.pending_deps == ("c2",)
    assert call(engine, p.CancelJob("c2")) == p.Done()
    assert engine.index.find("P").state == p.State.WAITING  # type: ignore[union-attr]  # nothing left to wait for


def test_an_undone_child_is_no_longer_waited_for_by_its_parent(engine: Engine) -> None:
    """A write undone (a flow or a push with a parent refused half way) removes its jobs as never made:
    the parent it linked them to stops waiting for them instead of going to the DLQ."""
    add_flow(engine, "P", ["c1", "c2"])
    assert call(engine, p.CancelJob("c1", FlowPolicy.REMOVE)) == p.Done()
    parent = engine.index.find("P")
    assert parent is not None and parent.state == p.State.WAITING_CHILDREN and parent.pending_deps == ("c2",)


def test_a_job_depending_on_a_cancelled_one_is_dead_lettered(engine: Engine) -> None:
    first = push(engine, "q", job_id="A")
    then = push(engine, "q", job_id="B", depends_on=(first,))
    assert engine.index.find(then).state == p.State.WAITING_CHILDREN  # type: ignore[union-attr]
    assert call(engine, p.CancelJob(first)) == p.Done()
    assert engine.index.find(then).state == p.State.FAILED  # type: ignore[union-attr]


def test_link_then_detach_a_child(engine: Engine) -> None:
    parent, child = push(engine, "pq", job_id="P"), push(engine, "q", job_id="C")
    assert call(engine, p.LinkChild(parent, child)) == p.Done()
    assert call(engine, p.SetParent(child, parent, SLOT)) == p.Done()
    assert engine.jobs[parent].state == p.State.WAITING_CHILDREN and engine.jobs[parent].children_ids == ("C",)
    assert call(engine, p.DetachChild(parent, child)) == p.Count(1)
    assert call(engine, p.ClearParent(child, parent)) == p.Done()
    assert engine.jobs[parent].state == p.State.WAITING and engine.jobs[child].parent_id is None
    assert call(engine, p.DetachChild(parent, child)) == p.Count(0)  # no longer waiting for it


def test_an_active_parent_cannot_be_linked(engine: Engine) -> None:
    parent = push(engine, "pq", job_id="P")
    pull(engine, "pq")
    refused = call(engine, p.LinkChild(parent, "C"))
    assert refused == p.Error("bad_request", "Parent job P is not linkable")
    assert call(engine, p.LinkChild("nope", "C")) == p.Error("not_found", "Parent job not found: nope")


def test_a_parent_takes_at_most_a_thousand_children(engine: Engine) -> None:
    """Each child's completion writes its parent's record again, with every child and result in it: an
    unbounded number of children made those writes grow with its square (a gigabyte of WAL for 6,000)."""
    parent = push(engine, "pq", job_id="P")
    for i in range(MAX_CHILDREN):
        assert call(engine, p.LinkChild(parent, f"c{i}")) == p.Done()
    assert call(engine, p.LinkChild(parent, "c0")) == p.Done()  # one it has: no change
    refused = call(engine, p.LinkChild(parent, "one-more"))
    assert refused == p.Error("bad_request", f"Parent job P has too many children (max {MAX_CHILDREN})")
    assert len(engine.jobs[parent].children_ids) == MAX_CHILDREN


def test_a_removed_unprocessed_child_is_no_longer_waited_for(engine: Engine) -> None:
    add_flow(engine, "P", ["c1", "c2"])
    assert call(engine, p.RemoveUnprocessed("c1", "P")) == p.Count(1)
    assert call(engine, p.RemoveUnprocessed("c2", "other")) == p.Count(0)  # not that parent's child
    assert engine.index.find("c1") is None and engine.jobs["P"].pending_deps == ("c2",)
    assert call(engine, p.RemoveUnprocessed("c2", "P")) == p.Count(1)
    assert engine.jobs["P"].state == p.State.WAITING


def test_a_child_removed_unprocessed_fails_the_other_jobs_waiting_for_it(engine: Engine) -> None:
    """Its parent stops waiting for it; a job that named it in `dependsOn` is told it will not complete."""
    add_flow(engine, "P", ["c1", "c2"])
    other = push(engine, "oq", job_id="O", depends_on=("c1",))
    assert call(engine, p.RemoveUnprocessed("c1", "P")) == p.Count(1)
    assert engine.jobs["P"].pending_deps == ("c2",)
    assert engine.index.find(other).state == p.State.FAILED  # type: ignore[union-attr]


def test_move_to_waiting_children_then_a_linked_child_releases_it(engine: Engine) -> None:
    job = push(engine, "pq", job_id="P")
    token = pull(engine, "pq", owner="w")[0]
    assert token["id"] == job
    assert call(engine, p.MoveToWaitingChildren(job, engine.jobs[job].token)) == p.Done()
    assert engine.jobs[job].state == p.State.WAITING_CHILDREN and engine.jobs[job].token is None
    assert pull(engine, "pq") == []
    child = push(engine, "q", job_id="C")
    call(engine, p.LinkChild(job, child))
    call(engine, p.SetParent(child, job, SLOT))
    pull(engine, "q")
    assert call(engine, p.AckJobs([child], [b"7"])).acked == 1  # type: ignore[union-attr]
    assert engine.jobs[job].state == p.State.WAITING and engine.jobs[job].children == {"C": b"7"}
    assert call(engine, p.MoveToWaitingChildren(job)) == p.Error("bad_request", "Job is not active")


def test_links_and_kept_failures_survive_a_restart(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "s.db", FakeClock())
    add_flow(engine, "P", ["c1", "c2"], FlowPolicy.IGNORE)
    fail_next(engine)
    engine.flush()
    again = make_engine(tmp_path / "s.db", FakeClock())
    parent = again.jobs["P"]
    assert parent.state == p.State.WAITING_CHILDREN and parent.pending_deps == ("c2",)
    assert parent.ignored_failures == {"q:c1": "boom"} and again.jobs["c2"].parent_id == "P"
    pull(again, "q")
    assert call(again, p.AckJobs(["c2"])).acked == 1  # type: ignore[union-attr]
    assert again.jobs["P"].state == p.State.WAITING
