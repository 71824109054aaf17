"""The job path's HTTP contract, run against the in-process stand-in and against `bunq serve`."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bunq.routing import slot_of_id
from tests.support.cluster import Cluster
from tests.support.http import counts, pull, push, state

SPEC_JOB_FIELDS = {
    "id", "queue", "data", "priority", "createdAt", "runAt", "startedAt", "completedAt", "attempts",
    "maxAttempts", "backoff", "progress", "tags", "lifo", "removeOnComplete", "removeOnFail",
}  # fmt: skip


def test_push_pull_ack_lifecycle(api: Any, queue: str) -> None:
    job_id = push(api, queue, data={"to": "a@b.c"}, priority=10, tags=["onboarding"])
    assert slot_of_id(job_id) is not None
    assert api.get(f"/jobs/{job_id}/state").json() == {"ok": True, "id": job_id, "state": "waiting"}
    job = pull(api, queue)
    assert job is not None and SPEC_JOB_FIELDS <= set(job)
    assert job["id"] == job_id and job["data"] == {"to": "a@b.c"} and job["priority"] == 10
    assert (job["attempts"], job["maxAttempts"], job["backoff"], job["progress"]) == (0, 3, 1000, 0)
    assert job["tags"] == ["onboarding"] and job["lifo"] is False and job["queue"] == queue
    assert api.get(f"/jobs/{job_id}/state").json()["state"] == "active"
    assert counts(api, queue)["active"] == 1
    r = api.post(f"/jobs/{job_id}/ack", json={"result": {"sent": True}})
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert api.get(f"/jobs/{job_id}/state").json()["state"] == "completed"
    assert api.get(f"/jobs/{job_id}/result").json() == {"ok": True, "id": job_id, "result": {"sent": True}}
    got = api.get(f"/jobs/{job_id}").json()["job"]
    assert got["completedAt"] is not None and got["startedAt"] is not None
    assert counts(api, queue) | {"completed": 1, "active": 0, "waiting": 0} == counts(api, queue)
    again = api.post(f"/jobs/{job_id}/ack", json={})
    assert again.status_code == 400 and again.json() == {"ok": False, "error": "Job not found or not active"}


def test_pull_on_empty_queue_returns_null(api: Any, queue: str) -> None:
    assert api.get(f"/queues/{queue}/jobs").json() == {"ok": True, "job": None}


def test_priority_then_fifo_with_lifo_first_within_its_priority(api: Any, queue: str) -> None:
    low1 = push(api, queue, priority=1)
    high = push(api, queue, priority=100)
    low2 = push(api, queue, priority=1)
    low_lifo = push(api, queue, priority=1, lifo=True)
    order = [pull(api, queue)["id"] for _ in range(4)]  # type: ignore[index]
    assert order == [high, low_lifo, low1, low2]


def test_delayed_job_is_not_pulled_early(api: Any, queue: str) -> None:
    job_id = push(api, queue, delay=60_000)
    assert api.get(f"/jobs/{job_id}/state").json()["state"] == "delayed"
    assert pull(api, queue) is None
    assert counts(api, queue)["delayed"] == 1


def test_fail_retries_then_dead_letters(api: Any, queue: str) -> None:
    job_id = push(api, queue, maxAttempts=2, backoff=0)
    assert pull(api, queue)["id"] == job_id  # type: ignore[index]
    assert api.post(f"/jobs/{job_id}/fail", json={"error": "SMTP refused"}).json() == {"ok": True}
    retried = pull(api, queue)
    assert retried is not None and retried["id"] == job_id and retried["attempts"] == 1
    api.post(f"/jobs/{job_id}/fail", json={"error": "still refused"})
    assert api.get(f"/jobs/{job_id}/state").json()["state"] == "failed"
    dlq = api.get(f"/queues/{queue}/dlq").json()
    assert dlq["ok"] is True and dlq["total"] == 1
    entry = dlq["jobs"][0]
    assert entry["id"] == job_id and entry["attempts"] == 2 and entry["data"] == {"n": 1}
    assert entry["error"] == "still refused" and entry["reason"]
    assert counts(api, queue)["failed"] == 1


def test_attempts_is_read_as_max_attempts_when_that_is_absent(api: Any, queue: str) -> None:
    """`attempts`, the reference's (and BullMQ's) name: a job pushed with `attempts: 1` dead-letters at its
    first failure; `maxAttempts`, when sent too, wins; single and bulk pushes alike."""
    once = push(api, queue, attempts=1, backoff=0)
    both = push(api, queue, attempts=5, maxAttempts=2)
    bulk = api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": [{"data": 1, "attempts": 4}]}).json()["ids"][0]
    assert [api.get(f"/jobs/{i}").json()["job"]["maxAttempts"] for i in (once, both, bulk)] == [1, 2, 4]
    assert pull(api, queue)["id"] == once  # type: ignore[index]
    api.post(f"/jobs/{once}/fail", json={"error": "no retry"})
    assert api.get(f"/jobs/{once}/state").json()["state"] == "failed"
    refused = api.post(f"/queues/{queue}/jobs", json={"data": 1, "attempts": 0})
    assert refused.status_code == 400 and refused.json()["error"] == "maxAttempts must be at least 1"


def test_fail_applies_exponential_backoff(cluster: Cluster, api: Any, queue: str) -> None:
    """The spec's backoff·2^attempt, `attempt` the attempts made (the job's `attempts` after the failure, as the
    reference reckons it): 2·backoff after the first failure, then 4·, 8·: twice as long each time."""
    job_id = push(api, queue, backoff=60_000, maxAttempts=4)
    for attempt, wait in ((1, 120_000), (2, 240_000), (3, 480_000)):
        assert pull(api, queue)["id"] == job_id  # type: ignore[index]
        before = cluster.now()
        api.post(f"/jobs/{job_id}/fail", json={})
        after = cluster.now()
        job = api.get(f"/jobs/{job_id}").json()["job"]
        assert job["state"] == "delayed" and job["attempts"] == attempt
        assert before + wait - 50 <= job["runAt"] <= after + wait + 50, (attempt, job["runAt"] - before)
        assert api.post(f"/jobs/{job_id}/promote").status_code == 200


def test_bulk_push_is_ordered_and_atomic(api: Any, queue: str) -> None:
    bad = api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": [{"data": 1}, {"data": 2, "priority": "high"}]})
    assert bad.status_code == 400 and bad.json() == {"ok": False, "error": "jobs[1]: priority must be a number"}
    assert counts(api, queue)["waiting"] == 0
    r = api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": [{"data": i} for i in range(5)]})
    ids = r.json()["ids"]
    assert r.status_code == 200 and len(ids) == 5
    assert [pull(api, queue)["data"] for _ in range(5)] == list(range(5))  # type: ignore[index]


def test_pull_batch_and_ack_batch(api: Any, queue: str) -> None:
    api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": [{"data": i} for i in range(7)]})
    r = api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 5})
    jobs = r.json()["jobs"]
    assert len(jobs) == 5
    rest = api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 5}).json()["jobs"]
    assert len(rest) == 2
    ids = [j["id"] for j in jobs + rest]
    r = api.post("/jobs/ack-batch", json={"ids": ids, "results": [{"i": i} for i in range(7)]})
    assert r.json() == {"ok": True, "count": 7}
    assert api.get(f"/jobs/{ids[3]}/result").json()["result"] == {"i": 3}
    assert counts(api, queue)["completed"] == 7


def test_pull_batch_with_owner_returns_tokens_that_guard_the_ack(api: Any, queue: str) -> None:
    job_id = push(api, queue)
    r = api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 1, "owner": "w1", "lockTtl": 30_000}).json()
    token = r["tokens"][0]
    stale = api.post(f"/jobs/{job_id}/ack", json={"token": "not-the-token"})
    assert stale.status_code == 400
    assert api.post(f"/jobs/{job_id}/ack", json={"token": token}).json() == {"ok": True}


def test_custom_job_id_is_idempotent_and_found(api: Any, queue: str) -> None:
    custom = f"order-{queue}"
    assert push(api, queue, jobId=custom) == custom
    assert push(api, queue, jobId=custom, data={"other": True}) == custom
    assert counts(api, queue)["waiting"] == 1
    job = api.get(f"/jobs/custom/{custom}").json()["job"]
    assert job["id"] == custom and job["data"] == {"n": 1}
    assert api.get(f"/jobs/{custom}").json()["job"]["id"] == custom
    pull(api, queue)
    assert api.post(f"/jobs/{custom}/ack", json={"result": 42}).json() == {"ok": True}
    assert api.get(f"/jobs/{custom}/result").json()["result"] == 42


def test_unknown_jobs(api: Any) -> None:
    missing = "01a21fd3-73b1-7072-befd-57aeb28c4d56"
    for job_id in (missing, "no-such-job"):
        assert api.get(f"/jobs/{job_id}").status_code == 404
        assert api.get(f"/jobs/{job_id}").json() == {"ok": False, "error": "Job not found"}
        assert api.get(f"/jobs/{job_id}/state").json() == {"ok": True, "id": job_id, "state": "unknown"}
        assert api.get(f"/jobs/{job_id}/result").status_code == 404
        assert api.delete(f"/jobs/{job_id}").status_code == 404
        assert api.post(f"/jobs/{job_id}/fail", json={}).status_code == 400
        ack = api.post(f"/jobs/{job_id}/ack", json={})
        assert ack.status_code == 400 and ack.json() == {"ok": False, "error": "Job not found or not active"}
        assert api.get(f"/jobs/custom/{job_id}").status_code == 404


def test_cancel_waiting_and_active_jobs(api: Any, queue: str) -> None:
    waiting = push(api, queue)
    active = push(api, queue, priority=5)
    assert pull(api, queue)["id"] == active  # type: ignore[index]
    assert api.delete(f"/jobs/{waiting}").json() == {"ok": True}
    assert api.delete(f"/jobs/{active}").json() == {"ok": True}
    assert api.get(f"/jobs/{waiting}/state").json()["state"] == "unknown"
    late_ack = api.post(f"/jobs/{active}/ack", json={})  # "will fail with job not found"
    assert late_ack.status_code == 400 and late_ack.json()["error"] == "Job not found or not active"
    assert pull(api, queue) is None
    assert counts(api, queue)["active"] == 0


def test_cancel_refuses_completed_and_dead_lettered_jobs(api: Any, queue: str) -> None:
    done = push(api, queue)
    pull(api, queue)
    api.post(f"/jobs/{done}/ack", json={"result": 1})
    dead = push(api, queue, maxAttempts=1)
    pull(api, queue)
    api.post(f"/jobs/{dead}/fail", json={"error": "boom"})
    for job_id, was in ((done, "completed"), (dead, "failed")):
        refused = api.delete(f"/jobs/{job_id}")
        assert refused.status_code == 400
        assert refused.json() == {"ok": False, "error": "Job not found or cannot be cancelled"}
        assert state(api, job_id) == was
    assert api.get(f"/jobs/{done}/result").json()["result"] == 1
    assert len(api.get(f"/queues/{queue}/dlq").json()["jobs"]) == 1


def test_remove_on_complete_keeps_the_result_reachable(api: Any, queue: str) -> None:
    job_id = push(api, queue, removeOnComplete=True)
    pull(api, queue)
    api.post(f"/jobs/{job_id}/ack", json={"result": "done"})
    assert counts(api, queue)["completed"] == 0
    assert api.get(f"/jobs/{job_id}").status_code == 404
    assert api.get(f"/jobs/{job_id}/result").json()["result"] == "done"


def test_an_ack_or_a_last_fail_can_drop_the_job_as_it_finishes(api: Any, queue: str) -> None:
    """ws-commands.md's `ACK removeOnComplete`, `ACKB removeOnCompletes` and `FAIL removeOnFail`: the
    reference's per-call forms of the push options (over HTTP too)."""
    kept, dropped = push(api, queue), push(api, queue)
    pull(api, queue), pull(api, queue)
    assert api.post(f"/jobs/{dropped}/ack", json={"result": 1, "removeOnComplete": True}).json() == {"ok": True}
    assert api.post(f"/jobs/{kept}/ack", json={"result": 2, "removeOnComplete": False}).json() == {"ok": True}
    assert state(api, dropped) == "unknown" and state(api, kept) == "completed"
    assert api.get(f"/jobs/{dropped}/result").json()["result"] == 1  # as with the push option

    ids = [push(api, queue) for _ in range(3)]
    api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 3})
    r = api.post("/jobs/ack-batch", json={"ids": ids, "removeOnCompletes": [True, False]})
    assert r.json() == {"ok": True, "count": 3}
    assert [state(api, i) for i in ids] == ["unknown", "completed", "completed"]

    retried, last = push(api, queue, maxAttempts=2), push(api, queue, maxAttempts=1)
    pull(api, queue), pull(api, queue)
    assert api.post(f"/jobs/{retried}/fail", json={"error": "x", "removeOnFail": True}).json() == {"ok": True}
    assert api.post(f"/jobs/{last}/fail", json={"error": "x", "removeOnFail": True}).json() == {"ok": True}
    assert state(api, last) == "unknown"  # not dead-lettered
    assert state(api, retried) in ("waiting", "delayed")  # attempts left: it is retried, and dropped only at its end
    assert api.get(f"/queues/{queue}/dlq").json()["jobs"] == []
    for bad in ({"removeOnComplete": "yes"},):
        refused = api.post(f"/jobs/{kept}/ack", json=bad)
        assert refused.status_code == 400 and refused.json()["error"] == "removeOnComplete must be a boolean"
    refused = api.post("/jobs/ack-batch", json={"ids": ids, "removeOnCompletes": [1]})
    assert refused.status_code == 400 and "removeOnCompletes" in refused.json()["error"]


def test_long_poll_returns_as_soon_as_a_job_is_pushed(cluster: Cluster, api: Any, queue: str) -> None:
    got: dict[str, Any] = {}

    def worker() -> None:
        started = time.monotonic()
        got["job"] = pull(api, queue, timeout=20_000)
        got["waited"] = time.monotonic() - started

    thread = threading.Thread(target=worker)
    thread.start()
    cluster.wait_parked()
    job_id = push(api, queue)
    thread.join(30)
    assert got["job"] is not None and got["job"]["id"] == job_id
    assert got["waited"] < 10, "the long poll ran to its timeout instead of waking on the push"


def test_long_poll_times_out_with_null(cluster: Cluster, api: Any, queue: str) -> None:
    """The poll holds for its whole timeout, then answers null."""
    assert cluster.parked_for(lambda: pull(api, queue, timeout=400), 400) is None


def test_a_long_poll_on_an_obliterated_queue_is_answered_null(cluster: Cluster, api: Any, queue: str) -> None:
    """Obliterating a queue ends the polls parked on it; none is left to run into the front's deadline (a 503)."""
    got: dict[str, Any] = {}

    def worker() -> None:
        reply = api.get(f"/queues/{queue}/jobs", params={"timeout": 20_000})
        got["status"], got["body"] = reply.status_code, reply.json()

    thread = threading.Thread(target=worker)
    thread.start()
    cluster.wait_parked()
    assert api.post(f"/queues/{queue}/obliterate").json() == {"ok": True}
    thread.join(15)
    assert not thread.is_alive(), "the parked poll was not answered"
    assert got == {"status": 200, "body": {"ok": True, "job": None}}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"data": 1, "priority": 1.5}, "priority must be an integer"),
        ({"data": 1, "priority": True}, "priority must be a number"),
        ({"data": 1, "priority": "1"}, "priority must be a number"),
        ({"data": 1, "priority": 1_000_001}, "priority must be at most 1000000"),
        ({"data": 1, "delay": -1}, "delay must be at least 0"),
        ({"data": 1, "delay": 365 * 86_400_000 + 1}, "delay must be at most 31536000000"),
        ({"data": 1, "maxAttempts": 0}, "maxAttempts must be at least 1"),
        ({"data": 1, "maxAttempts": 1001}, "maxAttempts must be at most 1000"),
        ({"data": 1, "backoff": 86_400_001}, "backoff must be at most 86400000"),
        ({"data": 1, "ttl": 365 * 86_400_000 + 1}, "ttl must be at most 31536000000"),
        ({"data": 1, "timeout": 86_400_001}, "timeout must be at most 86400000"),
        ({"data": 1, "lifo": "yes"}, "lifo must be a boolean"),
        ({"data": 1, "tags": "a"}, "tags must be an array of strings"),
        ({"data": 1, "jobId": 5}, "jobId must be a string"),
        ({}, "data is required"),
    ],
)
def test_invalid_push_is_refused_and_changes_nothing(api: Any, queue: str, body: Any, error: str) -> None:
    r = api.post(f"/queues/{queue}/jobs", json=body)
    assert r.status_code == 400 and r.json() == {"ok": False, "error": error}
    assert counts(api, queue)["waiting"] == 0 and counts(api, queue)["delayed"] == 0


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{bad", "Invalid JSON body"),
        (b'{"data": NaN}', "Invalid JSON body"),
        (b'{"data": 1, "delay": 1e999}', "delay must be a finite number"),
        (b"[1, 2]", "Request body must be a JSON object"),
    ],
)
def test_malformed_bodies_are_refused(api: Any, queue: str, raw: bytes, error: str) -> None:
    r = api.post(f"/queues/{queue}/jobs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"ok": False, "error": error}


@pytest.mark.parametrize(
    ("name", "error"),
    [("bad name", "Queue name contains invalid characters"), ("x" * 257, "Queue name too long (max 256 characters)")],
)
def test_invalid_queue_names(api: Any, name: str, error: str) -> None:
    r = api.post(f"/queues/{name}/jobs", json={"data": 1})
    assert r.status_code == 400 and r.json() == {"ok": False, "error": error}


def test_pull_parameters_are_validated(api: Any, queue: str) -> None:
    assert api.get(f"/queues/{queue}/jobs", params={"timeout": 60_001}).json() == {
        "ok": False, "error": "timeout must be at most 60000"}  # fmt: skip
    assert api.get(f"/queues/{queue}/jobs", params={"timeout": "abc"}).status_code == 400
    for count, message in ((0, "count must be at least 1"), (1001, "count must be at most 1000")):
        r = api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": count})
        assert r.status_code == 400 and r.json()["error"] == message


def test_oversized_data_is_refused(api: Any, queue: str) -> None:
    big = "x" * (10 * 1024 * 1024 + 10)
    r = api.post(f"/queues/{queue}/jobs", json={"data": big})
    assert r.status_code == 400 and r.json() == {"ok": False, "error": "Job data too large (max 10MB)"}
    assert counts(api, queue)["waiting"] == 0


def test_body_past_the_limit_is_cut_off_while_reading(api: Any, queue: str) -> None:
    chunk = b"x" * (1024 * 1024)

    def body() -> Any:
        yield b'{"data":"'
        for _ in range(40):
            yield chunk
        yield b'"}'

    r = api.post(f"/queues/{queue}/jobs", content=body())
    assert r.status_code == 413 and r.json()["ok"] is False


def test_unknown_route_is_json_404(api: Any) -> None:
    r = api.get("/no/such/route")
    assert r.status_code == 404 and r.json()["ok"] is False
    slashed = api.get("/stats/", headers={"host": "evil.example"}, follow_redirects=False)
    assert slashed.status_code == 404 and slashed.json()["ok"] is False  # no redirect built from the Host header


def test_long_poll_is_answered_after_other_traffic(cluster: Cluster, api: Any, queue: str) -> None:
    """A parked pull must still be answered when other requests were served while it waited."""
    got: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: got.update(job=pull(api, queue, timeout=20_000)))
    thread.start()
    cluster.wait_parked()
    for i in range(5):
        push(api, f"{queue}-other")
        pull(api, f"{queue}-other")
        counts(api, f"{queue}-{i}")
    job_id = push(api, queue)
    thread.join(30)
    assert got["job"] is not None and got["job"]["id"] == job_id
