"""The flow commands (PUSHF, UpdateParent, the children commands, MoveToWaitingChildren) over WebSocket and
TCP through `bunq serve`, parents and children on different shards, and their state across a restart."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from bunq.routing import shard_of_slot, slot_of
from tests.support.commands import PROTOCOLS, Send, sender
from tests.support.processes import BunqServer, wait_until
from tests.support.tcp import RawTcp

pytestmark = pytest.mark.integration


def queue_on(shard: int, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(1000) if shard_of_slot(slot_of(f"{prefix}{i}", 256), 2) == shard)


PQ, CQ = queue_on(0, "fp"), queue_on(1, "fc")  # the parents' queue on shard 0, the children's on shard 1


@pytest.fixture(params=PROTOCOLS)
def send(request: pytest.FixtureRequest, server: BunqServer) -> Iterator[Send]:
    with sender(request.param, server) as call:
        yield call


def flow(parent: str, children: list[str], **child_options: Any) -> list[dict[str, Any]]:
    """A parent and its children as bunqueue's FlowProducer plans them (children first)."""
    jobs = [
        {
            "id": c,
            "queue": CQ,
            "input": {"name": "c", "data": {"__parentId": parent, "__parentQueue": PQ}, "parentId": parent}
            | child_options,
        }
        for c in children
    ]
    links = {"dependsOn": children, "childrenIds": children}
    return [*jobs, {"id": parent, "queue": PQ, "input": {"name": "p", "data": {"__childrenIds": children}} | links}]


def ids(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{tag}-{i}" for i in range(n)]


def state(send: Send, job_id: str) -> str:
    reply = send({"cmd": "GetState", "id": job_id})
    assert reply["ok"] is True
    return str(reply["state"])


def run(send: Send, queue: str, result: Any = None, fail: str | None = None) -> str:
    """Pull one job of `queue` and ack it (or fail it with `fail`); its id."""
    pulled = send({"cmd": "PULL", "queue": queue, "owner": "w", "lockTtl": 30_000})
    job_id, token = pulled["job"]["id"], pulled["token"]
    done = {"cmd": "FAIL", "error": fail} if fail is not None else {"cmd": "ACK", "result": result}
    assert send({**done, "id": job_id, "token": token}) == {"ok": True}
    return str(job_id)


def test_pushf_creates_a_flow_whose_parent_runs_after_its_children(send: Send) -> None:
    parent, first, second = ids(3)
    reply = send({"cmd": "PUSHF", "jobs": flow(parent, [first, second])})
    assert reply["ok"] is True
    snapshots = reply["data"]["jobs"]
    assert [j["id"] for j in snapshots] == [first, second, parent]  # the request's order
    assert snapshots[2]["childrenIds"] == [first, second] and snapshots[0]["parentId"] == parent
    assert snapshots[2]["state"] == "waiting-children" and snapshots[0]["queue"] == CQ
    assert state(send, parent) == "waiting-children"
    assert run(send, CQ, {"n": 1}) == first
    assert state(send, parent) == "waiting-children"
    assert run(send, CQ, {"n": 2}) == second
    wait_until(lambda: state(send, parent) == "waiting")
    values = send({"cmd": "GetChildrenValues", "id": parent})
    assert values["values"] == {first: {"n": 1}, second: {"n": 2}}


def test_pushf_refuses_a_bad_graph_and_creates_none_of_it(send: Send) -> None:
    parent, child = ids(2)
    good = flow(parent, [child])
    orphan = [good[0], {**good[1], "input": {**good[1]["input"], "childrenIds": []}}]
    cycle = [
        {"id": child, "queue": CQ, "input": {"name": "a", "data": {}, "dependsOn": [parent]}},
        {"id": parent, "queue": PQ, "input": {"name": "b", "data": {}, "dependsOn": [child]}},
    ]
    both = {"continueParentOnFailure": True, "ignoreDependencyOnFailure": True}
    refusals = [
        (orphan, f"flow parent {parent} does not own child {child}"),
        (cycle, "flow contains a dependency cycle"),
        ([good[0], good[0]], f"duplicate flow job id: {child}"),
        (flow(parent, [child], **both), "flow failure policies are mutually exclusive"),
        (flow(parent, [child], repeat={"every": 5}), "repeat is not supported inside an atomic flow"),
        ([{**good[0], "queue": "bad queue!"}, good[1]], "invalid flow queue: bad queue!"),
        ([{**good[0], "input": {**good[0]["input"], "maxAttempts": 0}}, good[1]], "flow jobs[0]: "),
        ("nope", "flow jobs must be an array"),
    ]
    for jobs, error in refusals:
        reply = send({"cmd": "PUSHF", "jobs": jobs})
        assert reply["ok"] is False and reply["error"].startswith(error), (jobs, reply)
    assert state(send, parent) == "unknown" and state(send, child) == "unknown"
    assert send({"cmd": "PUSHF", "jobs": good})["ok"] is True
    again = send({"cmd": "PUSHF", "jobs": flow(parent, [child, f"{child}-new"])})
    assert again["ok"] is False and again["error"] in {f"Flow job {i} already exists" for i in (parent, child)}
    assert state(send, f"{child}-new") == "unknown"


def test_a_child_s_failure_policy_decides_what_its_parent_does(send: Send) -> None:
    cases = {"continueParentOnFailure": "GetFailedChildrenValues", "ignoreDependencyOnFailure": None}
    for policy, reader in cases.items():
        parent, failing, other = ids(3)
        jobs = flow(parent, [failing, other])
        jobs[0]["input"] |= {policy: True, "maxAttempts": 1}
        assert send({"cmd": "PUSHF", "jobs": jobs})["ok"] is True
        assert run(send, CQ, fail="boom") == failing
        key = {f"{CQ}:{failing}": "boom"}
        if reader is not None:  # continue: the parent runs now, the failure kept
            wait_until(lambda parent=parent: state(send, parent) == "waiting")
            assert send({"cmd": reader, "id": parent}) == {"ok": True, "values": key}
            assert send({"cmd": "GetIgnoredChildrenFailures", "id": parent}) == {"ok": True, "values": {}}
            run(send, CQ)  # the other child, still there
            continue
        wait_until(lambda p=parent, k=key: send({"cmd": "GetIgnoredChildrenFailures", "id": p})["values"] == k)
        assert state(send, parent) == "waiting-children"  # ignore: it still waits for the other child
        assert run(send, CQ, "ok") == other
        wait_until(lambda parent=parent: state(send, parent) == "waiting")
        assert send({"cmd": "GetFailedChildrenValues", "id": parent}) == {"ok": True, "values": {}}
    assert send({"cmd": "GetFailedChildrenValues", "id": "no-such-job"}) == {"ok": True, "values": {}}


def test_update_parent_links_a_child_and_remove_child_dependency_undoes_it(send: Send) -> None:
    parent, child, other = ids(3)
    assert send({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": parent})["ok"] is True
    assert send({"cmd": "PUSH", "queue": CQ, "data": {}, "jobId": child})["ok"] is True
    assert send({"cmd": "UpdateParent", "childId": child, "parentId": child}) == {
        "ok": False,
        "error": "A flow job cannot be its own parent",
    }
    missing = send({"cmd": "UpdateParent", "childId": "nope", "parentId": parent})
    assert missing == {"ok": False, "error": "Child job not found: nope"}
    assert send({"cmd": "UpdateParent", "childId": child, "parentId": parent}) == {"ok": True}
    assert state(send, parent) == "waiting-children"
    assert send({"cmd": "GetJob", "id": child})["job"]["parentId"] == parent
    assert send({"cmd": "GetJob", "id": parent})["job"]["childrenIds"] == [child]
    assert send({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": other})["ok"] is True
    stolen = send({"cmd": "UpdateParent", "childId": child, "parentId": other})
    assert stolen == {"ok": False, "error": f"Child job {child} already belongs to parent {parent}"}

    assert send({"cmd": "RemoveChildDependency", "id": child}) == {"ok": True, "removed": True}
    assert state(send, parent) == "waiting"  # it waited for that child only
    assert send({"cmd": "GetJob", "id": child})["job"]["parentId"] is None
    assert send({"cmd": "GetJob", "id": parent})["job"]["childrenIds"] == []
    assert send({"cmd": "RemoveChildDependency", "id": child}) == {"ok": False, "error": f"Job {child} has no parent"}
    assert send({"cmd": "RemoveChildDependency", "id": "nope"}) == {"ok": False, "error": "Job not found: nope"}


def test_update_parent_refuses_a_cycle_and_names_what_is_missing(send: Send) -> None:
    top, middle, bottom = ids(3)
    for queue, job_id in ((PQ, top), (CQ, middle), (PQ, bottom)):
        assert send({"cmd": "PUSH", "queue": queue, "data": {}, "jobId": job_id})["ok"] is True
    assert send({"cmd": "UpdateParent", "childId": middle, "parentId": top}) == {"ok": True}
    assert send({"cmd": "UpdateParent", "childId": bottom, "parentId": middle}) == {"ok": True}
    cycle = send({"cmd": "UpdateParent", "childId": top, "parentId": bottom})  # top would wait for its own grandchild
    assert cycle == {"ok": False, "error": "flow contains a dependency cycle"}
    assert send({"cmd": "GetJob", "id": top})["job"]["parentId"] is None
    assert state(send, bottom) == "waiting"  # nothing linked
    assert send({"cmd": "UpdateParent"}) == {"ok": False, "error": "childId and parentId are required"}


def test_a_flow_across_shards_is_finished_when_its_connection_closes_mid_push(server: BunqServer) -> None:
    """Closing the connection cancels its commands; a flow written in several steps must still be written
    whole (or undone), never left waiting for a leaf that is not there. The connection is closed once the
    first shard's part is written (its jobs can be read) and while the second shard's is being written."""
    chain = ids(8000)
    jobs = [
        {
            "id": job_id,
            "queue": (CQ if i % 2 else PQ),
            "input": {"data": {}, "dependsOn": chain[i - 1 : i] if i else []},
        }
        for i, job_id in enumerate(chain)
    ]
    with RawTcp(server.tcp_port) as tcp:

        def state_of(job_id: str) -> str:
            return str(tcp.call({"cmd": "GetState", "id": job_id})["state"])

        with connect(f"ws://127.0.0.1:{server.port}/ws/queues/elsewhere") as ws:
            ws.send(json.dumps({"cmd": "PUSHF", "jobs": jobs, "reqId": "f"}))
            deadline = time.monotonic() + 30
            while state_of(chain[2]) == "unknown" and time.monotonic() < deadline:  # shard 0's part, first
                pass
        wait_until(lambda: state_of(chain[0]) != "unknown" or state_of(chain[2]) == "unknown", timeout=30)
        assert (state_of(chain[0]), state_of(chain[-1])) in (("waiting", "waiting-children"), ("unknown", "unknown"))


def test_remove_unprocessed_children_leaves_the_running_one(send: Send) -> None:
    parent, *children = ids(4)
    assert send({"cmd": "PUSHF", "jobs": flow(parent, children)})["ok"] is True
    pulled = send({"cmd": "PULL", "queue": CQ, "owner": "w", "lockTtl": 30_000})
    assert pulled["job"]["id"] == children[0]
    assert send({"cmd": "RemoveUnprocessedChildren", "id": parent}) == {"ok": True}
    assert [state(send, c) for c in children] == ["active", "unknown", "unknown"]
    assert state(send, parent) == "waiting-children"  # still waiting for the one running
    assert send({"cmd": "ACK", "id": children[0], "token": pulled["token"]}) == {"ok": True}
    wait_until(lambda: state(send, parent) == "waiting")
    assert send({"cmd": "RemoveUnprocessedChildren", "id": "nope"}) == {"ok": True}


def test_move_to_waiting_children_parks_an_active_job_until_its_new_child_completes(send: Send) -> None:
    job, child = ids(2)
    assert send({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": job})["ok"] is True
    assert send({"cmd": "MoveToWaitingChildren", "id": job}) == {"ok": False, "error": "Job is not active"}
    assert send({"cmd": "MoveToWaitingChildren", "id": "nope"}) == {"ok": False, "error": "Job is not active"}
    pulled = send({"cmd": "PULL", "queue": PQ, "owner": "w", "lockTtl": 30_000})
    bad = send({"cmd": "MoveToWaitingChildren", "id": job, "token": "wrong"})
    assert bad == {"ok": False, "error": f"Invalid or expired lock token for job {job}"}
    moved = send({"cmd": "MoveToWaitingChildren", "id": job, "token": pulled["token"]})
    assert moved == {"ok": True, "data": {"moved": True}}
    assert state(send, job) == "waiting-children"
    assert send({"cmd": "PULL", "queue": PQ, "timeout": 0})["job"] is None
    assert send({"cmd": "PUSH", "queue": CQ, "data": {}, "jobId": child})["ok"] is True
    assert send({"cmd": "UpdateParent", "childId": child, "parentId": job}) == {"ok": True}
    assert run(send, CQ, 7) == child
    wait_until(lambda: state(send, job) == "waiting")
    assert send({"cmd": "PULL", "queue": PQ, "timeout": 0})["job"]["id"] == job  # it runs again


def test_flow_links_and_kept_failures_survive_a_restart(server: BunqServer) -> None:
    parent, failing, waiting = ids(3)
    with RawTcp(server.tcp_port) as tcp:
        jobs = flow(parent, [failing, waiting], durable=True)
        jobs[0]["input"] |= {"ignoreDependencyOnFailure": True, "maxAttempts": 1}
        assert tcp.call({"cmd": "PUSHF", "jobs": jobs})["ok"] is True
        pulled = tcp.call({"cmd": "PULL", "queue": CQ, "owner": "w", "lockTtl": 30_000})
        assert tcp.call({"cmd": "FAIL", "id": failing, "token": pulled["token"], "error": "boom"})["ok"] is True
        wait_until(lambda: tcp.call({"cmd": "GetIgnoredChildrenFailures", "id": parent})["values"])
    server.stop()
    server.start()
    with RawTcp(server.tcp_port) as tcp:
        assert tcp.call({"cmd": "GetState", "id": parent})["state"] == "waiting-children"
        ignored = tcp.call({"cmd": "GetIgnoredChildrenFailures", "id": parent})["values"]
        assert ignored == {f"{CQ}:{failing}": "boom"}
        assert tcp.call({"cmd": "GetJob", "id": waiting})["job"]["parentId"] == parent
        pulled = tcp.call({"cmd": "PULL", "queue": CQ, "owner": "w", "lockTtl": 30_000})
        assert pulled["job"]["id"] == waiting
        assert tcp.call({"cmd": "ACK", "id": waiting, "token": pulled["token"], "result": 1})["ok"] is True
        wait_until(lambda: tcp.call({"cmd": "GetState", "id": parent})["state"] == "waiting")
