"""Job lifecycle semantics through `bunq serve` over HTTP, each test a case where bunq once disagreed with the
spec's text (found by running the same sequences of job operations against bunq and the reference)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.http import counts, ok, push, state
from tests.support.processes import BunqServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = BunqServer(tmp_path_factory.mktemp("lifecycle") / "data", shards=2)
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture
def queue() -> str:
    return f"life-{uuid.uuid4().hex[:8]}"


def leased(api: httpx.Client, queue: str) -> tuple[str, str]:
    """Pull one job with an owner (lock-based processing): its id and lock token."""
    got = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 1, "owner": "w1"}))
    return str(got["jobs"][0]["id"]), str(got["tokens"][0])


def test_progress_of_a_leased_job_needs_no_token_but_a_wrong_one_is_refused(api: httpx.Client, queue: str) -> None:
    # the spec's progress body is {progress, message}: a worker of lock-based processing reports progress with it
    push(api, queue)
    job_id, token = leased(api, queue)
    ok(api.post(f"/jobs/{job_id}/progress", json={"progress": 40, "message": "half way"}))
    assert ok(api.get(f"/jobs/{job_id}/progress")) == {"ok": True, "progress": 40, "message": "half way"}
    wrong = api.post(f"/jobs/{job_id}/progress", json={"progress": 60, "token": "not-the-token"})
    assert wrong.status_code == 400
    assert wrong.json() == {"ok": False, "error": f"Invalid or expired lock token for job {job_id}"}
    ok(api.post(f"/jobs/{job_id}/progress", json={"progress": 70, "token": token}))
    assert ok(api.get(f"/jobs/{job_id}/progress"))["progress"] == 70
    ok(api.post(f"/jobs/{job_id}/ack", json={"token": token}))


def test_discard_puts_a_remove_on_fail_job_in_the_dlq(api: httpx.Client, queue: str) -> None:
    # discard moves a job "directly to the Dead Letter Queue"; removeOnFail is about a final failure
    waiting = push(api, queue, removeOnFail=True)
    ok(api.post(f"/jobs/{waiting}/discard"))
    assert state(api, waiting) == "failed"
    dlq = ok(api.get(f"/queues/{queue}/dlq"))
    assert [job["id"] for job in dlq["jobs"]] == [waiting]
    assert counts(api, queue)["failed"] == 1
    ok(api.post(f"/queues/{queue}/dlq/retry", json={"jobId": waiting}))
    assert state(api, waiting) == "waiting"
    # a final failure of the same job still removes it, as removeOnFail says
    ok(api.put(f"/jobs/{waiting}/data", json={"data": {"again": True}}))
    job_id, token = leased(api, queue)
    assert job_id == waiting
    for _ in range(3):
        ok(api.post(f"/jobs/{job_id}/fail", json={"error": "boom", "token": token}))
        if state(api, job_id) == "unknown":
            break
        ok(api.post(f"/jobs/{job_id}/promote"))
        job_id, token = leased(api, queue)
    assert state(api, waiting) == "unknown"
    assert ok(api.get(f"/queues/{queue}/dlq"))["jobs"] == []


def test_clean_without_a_state_removes_waiting_and_delayed_jobs_only(api: httpx.Client, queue: str) -> None:
    # the spec's clean: `state` is "waiting or delayed", default all of them; finished jobs are cleaned by name
    done, dead = push(api, queue), push(api, queue)
    pulled = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 2}))["jobs"]
    assert {job["id"] for job in pulled} == {done, dead}
    ok(api.post(f"/jobs/{done}/ack", json={"result": 1}))
    ok(api.post(f"/jobs/{dead}/discard"))
    waiting, delayed = push(api, queue), push(api, queue, delay=60_000)
    body = ok(api.post(f"/queues/{queue}/clean", json={"grace": 0}))
    assert body["count"] == 2 and set(body["ids"]) == {waiting, delayed}
    assert (state(api, done), state(api, dead)) == ("completed", "failed")
    assert ok(api.get(f"/jobs/{done}/result"))["result"] == 1
    assert [job["id"] for job in ok(api.get(f"/queues/{queue}/dlq"))["jobs"]] == [dead]
    assert ok(api.post(f"/queues/{queue}/clean", json={"grace": 0, "state": "completed"}))["ids"] == [done]
    assert ok(api.post(f"/queues/{queue}/clean", json={"grace": 0, "state": "failed"}))["ids"] == [dead]
    assert counts(api, queue) | {"waiting": 0, "delayed": 0, "completed": 0, "failed": 0} == counts(api, queue)


def test_jobs_waiting_for_dependencies_are_listed(api: httpx.Client, queue: str) -> None:
    # the spec: a job with dependsOn "enters waiting-children state"; a listing of all states shows it
    parent = push(api, queue)
    child = push(api, queue, dependsOn=[parent])
    delayed = push(api, queue, delay=60_000)
    assert state(api, child) == "waiting-children"
    everything = ok(api.get(f"/queues/{queue}/jobs/list"))["jobs"]
    assert {job["id"] for job in everything} == {parent, child, delayed}
    assert {job["id"]: job["state"] for job in everything}[child] == "waiting-children"
    only = ok(api.get(f"/queues/{queue}/jobs/list", params={"state": "waiting-children"}))["jobs"]
    assert [job["id"] for job in only] == [child]
    got = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 1}))["jobs"]
    assert got[0]["id"] == parent
    ok(api.post(f"/jobs/{parent}/ack", json={}))
    assert state(api, child) == "waiting"
    assert ok(api.get(f"/queues/{queue}/jobs/list", params={"state": "waiting-children"}))["jobs"] == []
    assert [job["id"] for job in ok(api.get(f"/queues/{queue}/jobs/list", params={"state": "waiting"}))["jobs"]] == [
        child
    ]


def test_a_priority_change_keeps_the_job_s_fifo_place_within_its_new_priority(api: httpx.Client, queue: str) -> None:
    # the spec: higher priority first, FIFO within a priority; a job's place in that order is its push
    first, second, third = push(api, queue), push(api, queue, priority=5), push(api, queue)
    ok(api.put(f"/jobs/{first}/priority", json={"priority": 5}))
    ok(api.put(f"/jobs/{third}/priority", json={"priority": 0}))  # no change: it stays where it was
    delayed = push(api, queue, delay=60_000)
    ok(api.put(f"/jobs/{delayed}/priority", json={"priority": 5}))
    ok(api.post(f"/jobs/{delayed}/promote"))
    pulled = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 4}))["jobs"]
    assert [job["id"] for job in pulled] == [first, second, delayed, third]


def test_a_job_run_again_starts_without_the_last_run_s_progress(api: httpx.Client, queue: str) -> None:
    # retry-completed and a DLQ retry run a job from scratch: its progress and progress message go
    job_id = push(api, queue, maxAttempts=1)
    for retry in (f"/queues/{queue}/retry-completed", f"/queues/{queue}/dlq/retry"):
        job, token = leased(api, queue)
        assert job == job_id
        ok(api.post(f"/jobs/{job_id}/progress", json={"progress": 60, "message": "sending", "token": token}))
        if retry.endswith("retry-completed"):
            ok(api.post(f"/jobs/{job_id}/ack", json={"token": token}))
        else:
            ok(api.post(f"/jobs/{job_id}/fail", json={"error": "boom", "token": token}))
        assert ok(api.get(f"/jobs/{job_id}/progress")) == {"ok": True, "progress": 60, "message": "sending"}
        assert ok(api.post(retry, json={}))["count"] == 1
        assert state(api, job_id) == "waiting"
        assert ok(api.get(f"/jobs/{job_id}/progress")) == {"ok": True, "progress": 0, "message": None}
        job_view = ok(api.get(f"/jobs/{job_id}"))["job"]
        assert (job_view["progress"], job_view["progressMessage"], job_view["attempts"]) == (0, None, 0)


def test_a_client_s_own_uuid_v7_job_id_is_acked_in_a_batch_whichever_shard_it_seems_to_name(
    api: httpx.Client,
) -> None:
    """bunq's ids carry their slot in the UUID v7 `rand_a` field; a client's own UUID v7 (bunqueue's
    FlowProducer plans its jobs' ids so) reads the same way and may name a slot of another shard than its
    queue's. A batch ack routed by that slot found no such job there ("Job not found"), and the job stayed
    active: the other shards are asked too."""
    from bunq.routing import shard_of_slot, slot_of

    queue = "lifecycle-own-uuid7"
    other = 1 - shard_of_slot(slot_of(queue, 256), 2)  # the shard the queue is not on
    job_id = f"01a23579-5e23-7{other:03x}-8281-8bc21b59d332"  # its slot field: a slot of the other shard
    assert ok(api.post(f"/queues/{queue}/jobs", json={"data": 1, "jobId": job_id}))["id"] == job_id
    pulled = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 1, "owner": "w"}))
    assert [j["id"] for j in pulled["jobs"]] == [job_id]
    acked = ok(api.post("/jobs/ack-batch", json={"ids": [job_id], "tokens": pulled["tokens"]}))
    assert acked.get("failed") in (None, {}, [])
    assert state(api, job_id) == "completed"
