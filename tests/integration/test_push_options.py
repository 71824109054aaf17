"""ws-commands.md's push options through `bunq serve`, over WebSocket, TCP and HTTP: `parentId` and a child's
failure policy (parents and children on different shards), `dedup {ttl, extend, replace}` with `uniqueKey`,
`debounceId`/`debounceTtl`; their refusals, which push nothing; and their state across a restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bunq.routing import shard_of_slot, slot_of
from tests.support.commands import PROTOCOLS, Send, sender
from tests.support.processes import BunqServer, wait_until
from tests.support.tcp import RawTcp

pytestmark = pytest.mark.integration


def queue_on(shard: int, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(1000) if shard_of_slot(slot_of(f"{prefix}{i}", 256), 2) == shard)


PQ, CQ = queue_on(0, "pop"), queue_on(1, "poc")  # the parents' queue on shard 0, the children's on shard 1


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(tmp_path_factory.mktemp("push-options") / "data", shards=2)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(params=PROTOCOLS)
def send(request: pytest.FixtureRequest, shared: BunqServer) -> Iterator[Send]:
    with sender(request.param, shared) as call:
        yield call


def tag() -> str:
    return uuid.uuid4().hex[:8]


def state(send: Send, job_id: str) -> str:
    return str(send({"cmd": "GetState", "id": job_id})["state"])


def run(send: Send, queue: str, result: Any = None, fail: str | None = None) -> str:
    pulled = send({"cmd": "PULL", "queue": queue, "owner": "w", "lockTtl": 30_000})
    job_id, token = pulled["job"]["id"], pulled["token"]
    done = {"cmd": "FAIL", "error": fail} if fail is not None else {"cmd": "ACK", "result": result}
    assert send({**done, "id": job_id, "token": token}) == {"ok": True}
    return str(job_id)


def counts(send: Send, queue: str) -> dict[str, int]:
    return dict(send({"cmd": "GetJobCounts", "queue": queue})["counts"])


def test_a_push_with_parent_id_becomes_a_child_its_parent_waits_for(send: Send) -> None:
    parent = f"{tag()}-p"
    assert send({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": parent})["ok"] is True
    data = {"c": 1, "__parentId": parent, "__parentQueue": PQ}  # as bunqueue's Queue.add sends a parent
    pushed = send({"cmd": "PUSH", "queue": CQ, "data": data, "parentId": parent})
    assert pushed["ok"] is True
    child = pushed["id"]
    assert state(send, parent) == "waiting-children"
    assert send({"cmd": "GetJob", "id": child})["job"]["parentId"] == parent
    assert send({"cmd": "GetJob", "id": parent})["job"]["childrenIds"] == [child]
    assert run(send, CQ, {"r": 1}) == child
    wait_until(lambda: state(send, parent) == "waiting")
    assert send({"cmd": "GetChildrenValues", "id": parent})["values"] == {child: {"r": 1}}


def test_a_pushed_child_s_failure_policy_decides_what_its_parent_does(send: Send) -> None:
    parent = f"{tag()}-p"
    assert send({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": parent})["ok"] is True
    options = {"parentId": parent, "continueParentOnFailure": True, "maxAttempts": 1}
    child = send({"cmd": "PUSH", "queue": CQ, "data": {}, **options})["id"]
    assert run(send, CQ, fail="boom") == child
    wait_until(lambda: state(send, parent) == "waiting")  # continue: it runs without the child
    assert send({"cmd": "GetFailedChildrenValues", "id": parent}) == {"ok": True, "values": {f"{CQ}:{child}": "boom"}}


def test_a_parent_that_cannot_take_the_child_is_refused_in_the_reference_s_words(send: Send) -> None:
    parent, running = f"{tag()}-p", f"{tag()}-r"
    assert send({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": parent})["ok"] is True
    queue = f"po-q{tag()}"
    assert send({"cmd": "PUSH", "queue": queue, "data": {}, "jobId": running})["ok"] is True
    assert send({"cmd": "PULL", "queue": queue})["job"]["id"] == running
    wrong_queue = {"__parentId": parent, "__parentQueue": "elsewhere"}
    own = f"{tag()}-own"
    before = counts(send, CQ)
    refusals = [
        ({"parentId": "no-such-parent"}, "Parent job not found: no-such-parent"),
        ({"parentId": running}, f"Parent job {running} is not linkable"),
        ({"parentId": parent, "data": wrong_queue}, f"Parent job {parent} belongs to queue {PQ}, not elsewhere"),
        ({"parentId": own, "jobId": own}, "A job cannot be its own parent"),
        ({"parentId": 5}, "parentId must be a string"),
        (
            {"parentId": parent, "failParentOnFailure": True, "removeDependencyOnFailure": True},
            "flow failure policies are mutually exclusive",
        ),
    ]
    for fields, error in refusals:
        assert send({"cmd": "PUSH", "queue": CQ, "data": {}, **fields}) == {"ok": False, "error": error}
    assert counts(send, CQ) == before  # no child was pushed
    assert state(send, parent) == "waiting"  # nor linked


def test_dedup_ttl_extend_and_replace_answer_as_the_reference_does(send: Send) -> None:
    queue = f"po-d{tag()}"
    push = {"cmd": "PUSH", "queue": queue, "uniqueKey": "k"}
    first = send({**push, "data": {"n": 1}, "dedup": {"ttl": 600}})["id"]
    assert send({**push, "data": {"n": 2}})["id"] == first
    time.sleep(0.7)  # the window ends while the job still waits
    second = send({**push, "data": {"n": 3}})["id"]
    assert second != first
    assert send({"cmd": "GetDeduplicationJobId", "queue": queue, "deduplicationId": "k"})["data"] == {"jobId": second}
    assert send({**push, "data": {"n": 4}, "dedup": {"ttl": 5000, "extend": True}})["id"] == second
    third = send({**push, "data": {"n": 5}, "dedup": {"replace": True}})["id"]
    assert third not in (first, second)
    assert state(send, second) == "unknown"  # replaced
    assert run(send, queue) == first
    assert run(send, queue) == third  # it has the replacing push's data, in the replaced job's stead
    assert counts(send, queue)["waiting"] == 0


def test_extend_of_a_running_holder_is_refused_and_replace_takes_its_key(send: Send) -> None:
    queue = f"po-e{tag()}"
    push = {"cmd": "PUSH", "queue": queue, "data": {}, "uniqueKey": "k"}
    first = send(push)["id"]
    assert send({"cmd": "PULL", "queue": queue})["job"]["id"] == first
    extended = send({**push, "dedup": {"ttl": 1000, "extend": True}})
    assert extended == {"ok": False, "error": "Duplicate unique_key (extended TTL)"}
    second = send({**push, "dedup": {"replace": True}})["id"]
    assert second != first and state(send, first) == "active"
    assert send({"cmd": "GetDeduplicationJobId", "queue": queue, "deduplicationId": "k"})["data"] == {"jobId": second}


def test_a_debounce_key_keeps_the_last_push_of_its_window(send: Send) -> None:
    queue = f"po-b{tag()}"
    push = {"cmd": "PUSH", "queue": queue, "debounceId": "d", "debounceTtl": 60_000}
    pushed = [send({**push, "data": {"n": n}})["id"] for n in range(3)]
    assert len(set(pushed)) == 3
    assert [state(send, job_id) for job_id in pushed] == ["unknown", "unknown", "waiting"]
    assert send({"cmd": "PULL", "queue": queue})["job"]["data"] == {"n": 2}


def test_bad_options_are_refused_and_push_nothing(send: Send) -> None:
    queue = f"po-x{tag()}"
    refusals = [
        ({"uniqueKey": "k", "dedup": "x"}, "dedup must be an object"),
        ({"uniqueKey": "k", "dedup": {"ttl": -5}}, "dedup.ttl must be at least 1"),
        ({"uniqueKey": "k", "dedup": {"replace": "yes"}}, "dedup.replace must be a boolean"),
        ({"dedup": {"ttl": 100}}, "dedup needs uniqueKey (its deduplication id)"),
        ({"debounceId": "d"}, "debounceId and debounceTtl go together"),
        ({"debounceId": "d", "debounceTtl": -1}, "debounceTtl must be at least 1"),
    ]
    for fields, error in refusals:
        assert send({"cmd": "PUSH", "queue": queue, "data": {}, **fields}) == {"ok": False, "error": error}
        bulk = send({"cmd": "PUSHB", "queue": queue, "jobs": [{"data": {}}, {"data": {}, **fields}]})
        assert bulk == {"ok": False, "error": f"jobs[1]: {error}"}
    assert sum(counts(send, queue).values()) == 0


def test_http_pushes_take_the_options_as_fields_beyond_the_spec(shared: BunqServer) -> None:
    queue, parent = f"po-h{tag()}", f"{tag()}-p"
    with httpx.Client(base_url=shared.url) as http:
        assert http.post(f"/queues/{PQ}/jobs", json={"data": {}, "jobId": parent}).status_code == 200
        bulk = http.post(
            f"/queues/{queue}/jobs/bulk",
            json={"jobs": [{"data": {"n": 1}, "parentId": parent}, {"data": {"n": 2}, "uniqueKey": "k"}]},
        )
        child, holder = bulk.json()["ids"]
        assert http.get(f"/jobs/{parent}/state").json()["state"] == "waiting-children"
        again = http.post(f"/queues/{queue}/jobs", json={"data": {}, "uniqueKey": "k", "dedup": {"replace": True}})
        assert again.status_code == 200 and again.json()["id"] not in (child, holder)
        assert http.get(f"/jobs/{holder}/state").json()["state"] == "unknown"
        refused = http.post(f"/queues/{queue}/jobs", json={"data": {}, "parentId": "nope"})
        assert (refused.status_code, refused.json()) == (400, {"ok": False, "error": "Parent job not found: nope"})
        refused = http.post(f"/queues/{queue}/jobs", json={"data": {}, "uniqueKey": "k", "dedup": [1]})
        assert (refused.status_code, refused.json()["error"]) == (400, "dedup must be an object")


def test_windows_and_pushed_children_survive_a_restart(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=2).start()
    try:
        queue, parent = f"po-r{tag()}", f"{tag()}-p"
        with RawTcp(server.tcp_port) as tcp:
            assert tcp.call({"cmd": "PUSH", "queue": PQ, "data": {}, "jobId": parent, "durable": True})["ok"]
            child = tcp.call({"cmd": "PUSH", "queue": CQ, "data": {}, "parentId": parent, "durable": True})["id"]
            push = {"cmd": "PUSH", "queue": queue, "data": {}, "durable": True}
            held = tcp.call({**push, "uniqueKey": "long", "dedup": {"ttl": 600_000}})["id"]
            tcp.call({**push, "uniqueKey": "short", "dedup": {"ttl": 1500}})
            debounced = tcp.call({**push, "debounceId": "d", "debounceTtl": 600_000})["id"]
        server.stop()
        time.sleep(1.5)  # the short window ends while the server is down
        server.start()
        with RawTcp(server.tcp_port) as tcp:
            push = {"cmd": "PUSH", "queue": queue, "data": {}}
            assert tcp.call({**push, "uniqueKey": "long"})["id"] == held
            assert tcp.call({**push, "uniqueKey": "short"})["id"] not in (held, debounced)
            replacing = tcp.call({**push, "debounceId": "d", "debounceTtl": 600_000})["id"]
            assert replacing != debounced and tcp.call({"cmd": "GetState", "id": debounced})["state"] == "unknown"
            assert tcp.call({"cmd": "GetState", "id": parent})["state"] == "waiting-children"
            pulled = tcp.call({"cmd": "PULL", "queue": CQ, "owner": "w", "lockTtl": 30_000})
            assert pulled["job"]["id"] == child
            assert tcp.call({"cmd": "ACK", "id": child, "token": pulled["token"], "result": 1})["ok"] is True
            wait_until(lambda: tcp.call({"cmd": "GetState", "id": parent})["state"] == "waiting")
    finally:
        server.stop()
