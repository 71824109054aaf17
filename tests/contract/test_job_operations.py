"""Per-job operations over HTTP, against the in-process stand-in and `bunq serve`."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.http import counts, ok, pull, push, state

log = logging.getLogger(__name__)


def test_progress_is_reported_and_read(api: Any, queue: str) -> None:
    job_id = push(api, queue)
    refused = api.post(f"/jobs/{job_id}/progress", json={"progress": 10})
    assert refused.status_code == 400  # not active yet
    pull(api, queue)
    ok(api.post(f"/jobs/{job_id}/progress", json={"progress": 75, "message": "attachments"}))
    assert ok(api.get(f"/jobs/{job_id}/progress")) == {"ok": True, "progress": 75, "message": "attachments"}
    assert api.get(f"/jobs/{job_id}").json()["job"]["progress"] == 75
    ok(api.post(f"/jobs/{job_id}/progress", json={"progress": 80.5}))  # kept as sent, and the message with it
    assert ok(api.get(f"/jobs/{job_id}/progress")) == {"ok": True, "progress": 80.5, "message": "attachments"}
    assert api.get(f"/jobs/{job_id}").json()["job"]["progress"] == 80.5
    ok(api.post(f"/jobs/{job_id}/progress", json={"progress": 90, "message": ""}))
    assert ok(api.get(f"/jobs/{job_id}/progress")) == {"ok": True, "progress": 90, "message": ""}
    for bad in ({"progress": 101}, {"progress": -1}, {"progress": "x"}, {}):
        assert api.post(f"/jobs/{job_id}/progress", json=bad).status_code == 400


def test_update_data_replaces_the_payload(api: Any, queue: str) -> None:
    job_id = push(api, queue, data={"to": "old"})
    ok(api.put(f"/jobs/{job_id}/data", json={"data": {"to": "new"}}))
    assert pull(api, queue)["data"] == {"to": "new"}  # type: ignore[index]
    assert api.put(f"/jobs/{job_id}/data", json={}).json() == {"ok": False, "error": "data is required"}
    assert api.put("/jobs/nope/data", json={"data": 1}).status_code == 404


def test_change_priority_repositions_and_is_refused_when_active(api: Any, queue: str) -> None:
    first = push(api, queue)
    second = push(api, queue)
    ok(api.put(f"/jobs/{second}/priority", json={"priority": 100}))
    assert pull(api, queue)["id"] == second  # type: ignore[index]
    refused = api.put(f"/jobs/{second}/priority", json={"priority": 1})
    assert refused.status_code == 400 and "active" in refused.json()["error"]
    assert api.put(f"/jobs/{first}/priority", json={"priority": 2_000_000}).status_code == 400


def test_promote_and_move_to_wait(api: Any, queue: str) -> None:
    a = push(api, queue, delay=600_000)
    b = push(api, queue, delay=600_000)
    ok(api.post(f"/jobs/{a}/promote"))
    ok(api.post(f"/jobs/{b}/move-to-wait"))
    assert api.get(f"/jobs/{a}/state").json()["state"] == "waiting"
    again = api.post(f"/jobs/{a}/promote")
    assert again.status_code == 400 and again.json() == {"ok": False, "error": "Job not found or not delayed"}
    for unknown in (
        api.post("/jobs/nope/move-to-wait"),
        api.post("/jobs/nope/promote"),
    ):  # the spec's 400, for no job too
        assert unknown.status_code == 400 and unknown.json() == {"ok": False, "error": "Job not found or not delayed"}


def test_move_to_delayed_and_change_delay(api: Any, queue: str) -> None:
    job_id = push(api, queue)
    pull(api, queue)
    ok(api.post(f"/jobs/{job_id}/move-to-delayed", json={"delay": 600_000}))
    assert api.get(f"/jobs/{job_id}/state").json()["state"] == "delayed"
    assert counts(api, queue)["active"] == 0
    ok(api.put(f"/jobs/{job_id}/delay", json={"delay": 0}))
    assert pull(api, queue)["id"] == job_id  # type: ignore[index]
    assert api.put(f"/jobs/{job_id}/delay", json={"delay": 10}).status_code == 400
    assert api.post(f"/jobs/{job_id}/move-to-delayed", json={"delay": -5}).status_code == 400


def test_discard_moves_to_the_dlq(api: Any, queue: str) -> None:
    waiting = push(api, queue)
    active = push(api, queue, priority=9)
    pull(api, queue)
    ok(api.post(f"/jobs/{waiting}/discard"))
    ok(api.post(f"/jobs/{active}/discard"))
    dlq = api.get(f"/queues/{queue}/dlq").json()
    assert {j["id"] for j in dlq["jobs"]} == {waiting, active}
    assert counts(api, queue) | {"waiting": 0, "active": 0, "failed": 2} == counts(api, queue)
    assert api.post("/jobs/nope/discard").status_code == 404


def test_wait_returns_the_result_when_the_job_completes(cluster: Cluster, api: Any, queue: str) -> None:
    job_id = push(api, queue)
    got: dict[str, Any] = {}

    def waiter() -> None:
        started = time.monotonic()
        got["body"] = api.post(f"/jobs/{job_id}/wait", json={"timeout": 20_000}).json()
        got["waited"] = time.monotonic() - started

    thread = threading.Thread(target=waiter)
    thread.start()
    cluster.wait_parked()
    pull(api, queue)
    acked = time.monotonic()
    api.post(f"/jobs/{job_id}/ack", json={"result": {"sent": True}})
    thread.join(30)
    assert got["body"] == {"ok": True, "completed": True, "result": {"sent": True}}
    assert got["waited"] < 10, "wait ran to its timeout instead of waking on the ack"
    log.info(f"wait answered {1000 * (time.monotonic() - acked):.1f} ms after the ack request returned")
    assert ok(api.post(f"/jobs/{job_id}/wait", json={"timeout": 1})) == got["body"]


def test_wait_times_out_and_unknown_job(cluster: Cluster, api: Any, queue: str) -> None:
    job_id = push(api, queue)
    reply = cluster.parked_for(lambda: ok(api.post(f"/jobs/{job_id}/wait", json={"timeout": 100})), 100)
    assert reply == {"ok": True, "completed": False}
    assert api.post("/jobs/nope/wait", json={"timeout": 100}).json() == {"ok": False, "error": "Job not found"}


def test_heartbeats_and_lock_extension(api: Any, queue: str) -> None:
    a = push(api, queue)
    b = push(api, queue)
    got = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 2, "owner": "w", "lockTtl": 60_000}))
    tokens = dict(zip([j["id"] for j in got["jobs"]], got["tokens"], strict=True))
    assert ok(api.post(f"/jobs/{a}/heartbeat", json={"token": tokens[a]})) == {"ok": True, "data": {"ok": True}}
    assert ok(api.post(f"/jobs/{a}/extend-lock", json={"token": tokens[a], "duration": 120_000})) == {"ok": True}
    assert ok(api.post("/jobs/heartbeat-batch", json={"ids": [a, b], "tokens": [tokens[a], tokens[b]]}))["count"] == 2
    body = {"ids": [a, b], "tokens": [tokens[a], tokens[b]], "durations": [30_000, 60_000]}
    assert ok(api.post("/jobs/extend-locks", json=body))["count"] == 2
    partly = ok(api.post("/jobs/heartbeat-batch", json={"ids": [a, "nope"], "tokens": [tokens[a], None]}))
    assert partly == {  # 200 with what was refused, as the reference: one lost lease is not all of them
        "ok": True,
        "count": 1,
        "data": {"ok": True, "count": 1},
        "failed": {"nope": "Job not found"},
    }
    stale_locks = ok(api.post("/jobs/extend-locks", json={"ids": [a], "tokens": ["stale"], "durations": [5000]}))
    assert stale_locks["count"] == 0 and a in stale_locks["failed"]
    stale = api.post(f"/jobs/{a}/heartbeat", json={"token": "stale"})
    assert stale.status_code == 400
    tokenless = ok(api.post(f"/jobs/{a}/heartbeat", json={}))  # the spec: "Both fields are optional"
    assert tokenless == {"ok": True, "data": {"ok": True}}  # `data`, as the reference answers
    assert api.post("/jobs/nope/heartbeat", json={}).status_code == 400
    assert api.post(f"/jobs/{a}/extend-lock", json={"token": tokens[a]}).status_code == 400


def test_logs(api: Any, queue: str) -> None:
    job_id = push(api, queue)
    assert ok(api.post(f"/jobs/{job_id}/logs", json={"message": "connecting"}))["data"] == {"added": True}
    ok(api.post(f"/jobs/{job_id}/logs", json={"message": "slow", "level": "warn"}))
    body = ok(api.get(f"/jobs/{job_id}/logs"))
    logs = body["logs"]
    assert [(entry["level"], entry["message"]) for entry in logs] == [("info", "connecting"), ("warn", "slow")]
    assert body["data"] == {"logs": logs, "count": 2}  # the reference's shape, beside the spec's
    assert all(isinstance(entry["timestamp"], int) for entry in logs)
    assert api.post(f"/jobs/{job_id}/logs", json={"message": "x", "level": "debug"}).status_code == 400
    assert api.post(f"/jobs/{job_id}/logs", json={}).status_code == 400
    ok(api.delete(f"/jobs/{job_id}/logs"))
    assert ok(api.get(f"/jobs/{job_id}/logs"))["logs"] == []
    assert api.get("/jobs/nope/logs").status_code == 404


def test_dependencies_and_children(cluster: Cluster, api: Any, queue: str) -> None:
    other = queue + "-other"
    child_a = push(api, queue)
    child_b = push(api, other)
    parent = push(api, queue, dependsOn=[child_a, child_b])
    assert api.get(f"/jobs/{parent}/state").json()["state"] == "waiting-children"
    assert counts(api, queue)["waiting-children"] == 1
    for q, child in ((queue, child_a), (other, child_b)):
        assert pull(api, q)["id"] == child  # type: ignore[index]
        ok(api.post(f"/jobs/{child}/ack", json={"result": {"from": child}}))
    cluster.eventually(lambda: state(api, parent) == "waiting")  # the children's shards told the parent's
    assert pull(api, queue)["id"] == parent  # type: ignore[index]
    body = ok(api.get(f"/jobs/{parent}/children"))
    assert body["values"] == {child_a: {"from": child_a}, child_b: {"from": child_b}}
    assert body["data"] == {"values": body["values"]}  # the reference's shape, beside the spec's


def test_a_dependency_no_job_has_is_refused_and_one_of_the_same_bulk_is_not(api: Any, queue: str) -> None:
    missing = "019ce9d7-6983-7000-946f-48737be2b0f9"
    for body in ({"data": 1, "dependsOn": [missing]}, {"data": 1, "dependsOn": ["custom-nobody-has"]}):
        r = api.post(f"/queues/{queue}/jobs", json=body)
        assert r.status_code == 400 and r.json()["error"] == f"Dependency job not found: {body['dependsOn'][0]}"
    done = push(api, queue, removeOnComplete=True)
    pull(api, queue)
    ok(api.post(f"/jobs/{done}/ack", json={"result": 1}))  # gone, its result kept: still a dependency met
    jobs = [{"data": 1, "jobId": f"{queue}-child"}, {"data": 2, "dependsOn": [f"{queue}-child", done]}]
    bulk = api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": jobs})
    assert bulk.status_code == 200, bulk.text
    refused = api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": [{"data": 3, "dependsOn": [missing]}]})
    assert refused.status_code == 400 and refused.json()["error"] == f"Dependency job not found: {missing}"
    assert counts(api, queue)["waiting"] == 1 and counts(api, queue)["waiting-children"] == 1


@pytest.mark.parametrize("tz", ["Etc", "America", "A" * 300, "../../etc/passwd"])
def test_a_repeat_in_a_time_zone_that_is_none_is_a_400(api: Any, queue: str, tz: str) -> None:
    body = {"data": 1, "repeat": {"cron": "* * * * *", "tz": tz}}
    for path, sent in ((f"/queues/{queue}/jobs", body), (f"/queues/{queue}/jobs/bulk", {"jobs": [body]})):
        r = api.post(path, json=sent)
        assert r.status_code == 400 and "Unknown timezone" in r.json()["error"], r.text
    assert counts(api, queue)["delayed"] == 0


def test_a_custom_id_with_a_slash_is_refused_since_no_path_could_name_it(api: Any, queue: str) -> None:
    for path, body in (
        (f"/queues/{queue}/jobs", {"data": 1, "jobId": "orders/7"}),
        (f"/queues/{queue}/jobs/bulk", {"jobs": [{"data": 1}, {"data": 2, "jobId": "orders/7"}]}),
    ):
        r = api.post(path, json=body)
        assert r.status_code == 400 and r.json()["error"].endswith("jobId must not contain '/'"), r.text
    assert counts(api, queue)["waiting"] == 0


def test_unique_key_and_ttl_over_http(cluster: Cluster, api: Any, queue: str) -> None:
    first = push(api, queue, uniqueKey="order-1")
    assert push(api, queue, uniqueKey="order-1") == first
    expiring = push(api, queue, ttl=1, priority=5)
    cluster.advance(50)
    assert pull(api, queue)["id"] == first  # type: ignore[index]
    assert api.get(f"/jobs/{expiring}/state").json()["state"] == "unknown"  # "discarded" (spec)
    assert api.get(f"/jobs/{expiring}").status_code == 404


@pytest.mark.parametrize(
    ("repeat", "error"),
    [
        ({"cron": "not a cron"}, "Invalid cron expression: not a cron"),
        ({"every": 0}, "repeat.every must be at least 1"),
        ({"every": 10, "cron": "* * * * *"}, "repeat takes every or cron, not both"),
        ({}, "repeat needs every or cron"),
        ({"cron": "* * * * *", "tz": "Mars/Base"}, "Unknown timezone: Mars/Base"),
    ],
)
def test_invalid_repeat_is_refused(api: Any, queue: str, repeat: Any, error: str) -> None:
    r = api.post(f"/queues/{queue}/jobs", json={"data": 1, "repeat": repeat})
    assert r.status_code == 400 and r.json() == {"ok": False, "error": error}


def test_repeat_every_pushes_the_next_run_after_completion(cluster: Cluster, api: Any, queue: str) -> None:
    first = push(api, queue, repeat={"every": 50, "limit": 2})
    assert pull(api, queue)["id"] == first  # type: ignore[index]
    ok(api.post(f"/jobs/{first}/ack", json={}))
    assert counts(api, queue)["delayed"] == 1
    cluster.advance(50)
    cluster.eventually(lambda: counts(api, queue)["waiting"] == 1)
    second = pull(api, queue)
    assert second is not None and second["id"] != first and second["repeatCount"] == 1
    ok(api.post(f"/jobs/{second['id']}/ack", json={}))
    cluster.advance(200)
    assert counts(api, queue) | {"waiting": 0, "delayed": 0} == counts(api, queue)
    assert pull(api, queue) is None
    assert counts(api, queue)["completed"] == 2


UNKNOWN_ID_OPERATIONS = [
    ("GET", "", None), ("DELETE", "", None),
    ("GET", "/result", None), ("GET", "/progress", None), ("POST", "/progress", {"progress": 5}),
    ("PUT", "/data", {"data": 1}), ("PUT", "/priority", {"priority": 1}),
    ("POST", "/move-to-delayed", {"delay": 5}), ("PUT", "/delay", {"delay": 5}),
    ("POST", "/discard", {}), ("POST", "/wait", {"timeout": 10}), ("GET", "/children", None),
    ("GET", "/logs", None), ("POST", "/logs", {"message": "x"}), ("DELETE", "/logs", None),
]  # fmt: skip

# The spec's own errors for these name both cases ("Job not found or not active" for an ack, "... or not
# delayed" for a promote, "returned if the job doesn't exist"): a 400, as the reference answers them too.
UNKNOWN_ID_REFUSALS = [
    ("/ack", {}, "Job not found or not active"), ("/fail", {}, "Job not found or not active"),
    ("/heartbeat", {}, "Job not found or not active"),
    ("/extend-lock", {"duration": 1000}, "Job not found or not active"),
    ("/promote", {}, "Job not found or not delayed"), ("/move-to-wait", {}, "Job not found or not delayed"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "suffix", "body"), UNKNOWN_ID_OPERATIONS)
@pytest.mark.parametrize("job_id", ["no-such-job", "019ce9d7-6983-7000-946f-48737be2b0f9"])
def test_every_job_operation_on_an_unknown_id_is_404(
    api: Any, method: str, suffix: str, body: Any, job_id: str
) -> None:
    r = api.request(method, f"/jobs/{job_id}{suffix}", json=body)
    assert r.status_code == 404 and r.json() == {"ok": False, "error": "Job not found"}


@pytest.mark.parametrize(("suffix", "body", "error"), UNKNOWN_ID_REFUSALS)
@pytest.mark.parametrize("job_id", ["no-such-job", "019ce9d7-6983-7000-946f-48737be2b0f9"])
def test_an_ack_fail_heartbeat_or_promote_of_an_unknown_id_is_the_spec_s_400(
    api: Any, suffix: str, body: Any, error: str, job_id: str
) -> None:
    r = api.post(f"/jobs/{job_id}{suffix}", json=body)
    assert r.status_code == 400 and r.json() == {"ok": False, "error": error}


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("POST", "/ack", {}), ("POST", "/fail", {}), ("POST", "/progress", {"progress": 5}),
     ("POST", "/move-to-delayed", {"delay": 5}), ("PUT", "/delay", {"delay": 5}), ("POST", "/promote", {}),
     ("POST", "/heartbeat", {}), ("PUT", "/data", {"data": 1}), ("PUT", "/priority", {"priority": 1}),
     ("POST", "/discard", {})],
)  # fmt: skip
def test_an_operation_on_a_job_in_the_wrong_state_stays_400(
    api: Any, queue: str, method: str, suffix: str, body: Any
) -> None:
    job_id = api.post(f"/queues/{queue}/jobs", json={"data": 1}).json()["id"]
    assert api.get(f"/queues/{queue}/jobs").json()["job"]["id"] == job_id
    assert api.post(f"/jobs/{job_id}/ack", json={}).status_code == 200
    r = api.request(method, f"/jobs/{job_id}{suffix}", json=body)
    assert r.status_code == 400 and r.json()["ok"] is False and r.json()["error"] != "Job not found"
