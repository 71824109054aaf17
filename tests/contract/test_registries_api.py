"""Crons, webhooks and workers over HTTP, on both clusters: the aggregator's registries, with time moved
by `advance` (a fake clock in-process, the wall's against `bunq serve`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.support.cluster import Cluster
from tests.support.http import counts, ok, pull, push
from tests.support.webhooks import SECRET, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    local = Receiver(fail_first=1)
    yield local
    local.close()


@pytest.fixture
def barrier() -> Iterator[Receiver]:
    """A second receiver, its deliveries a sign that an event has been handed to every webhook."""
    local = Receiver()
    yield local
    local.close()


# ---- crons --------------------------------------------------------------------------------------


def test_a_repeat_every_cron_fires_each_interval_until_its_max_limit(cluster: Cluster, api: Any, queue: str) -> None:
    body = {"name": queue, "queue": queue, "data": {"n": 1}, "repeatEvery": 1000, "maxLimit": 2, "priority": 4}
    created = ok(api.post("/crons", json=body))["cron"]
    assert created["timezone"] == "UTC" and created["executions"] == 0
    assert created["nextRun"] >= cluster.now() + 900
    assert counts(api, queue)["waiting"] == 0
    cluster.advance(1000)
    cluster.eventually(lambda: counts(api, queue)["waiting"] == 1)
    assert ok(api.get(f"/crons/{queue}"))["cron"]["executions"] >= 1  # 2 if a slow machine let the next fire in
    cluster.advance(1000)
    cluster.eventually(lambda: api.get(f"/crons/{queue}").status_code == 404)  # its limit reached: removed
    cluster.advance(1000)
    assert counts(api, queue)["waiting"] == 2
    job = pull(api, queue)
    assert job is not None and job["data"] == {"n": 1} and job["priority"] == 4


def test_updating_a_cron_keeps_its_history(cluster: Cluster, api: Any, queue: str) -> None:
    body = {"name": queue, "queue": queue, "data": {"v": 1}, "repeatEvery": 1000}
    ok(api.post("/crons", json=body))
    cluster.advance(1000)
    cluster.eventually(lambda: ok(api.get(f"/crons/{queue}"))["cron"]["executions"] >= 1)
    slower = ok(api.post("/crons", json={**body, "repeatEvery": 60_000}))["cron"]  # no fire in the test from here
    assert slower["executions"] >= 1 and slower["lastRun"] is not None
    before = ok(api.get(f"/crons/{queue}"))["cron"]
    after = ok(api.post("/crons", json={**body, "data": {"v": 2}, "repeatEvery": 60_000}))["cron"]
    assert after["data"] == {"v": 2}
    history = ("executions", "lastRun", "createdAt")
    assert {k: after[k] for k in history} == {k: before[k] for k in history}
    ok(api.delete(f"/crons/{queue}"))


def test_cron_validation_updates_and_delete(api: Any, queue: str) -> None:
    for body, error in (
        ({"name": "x", "queue": "q", "data": 1}, "Cron job must have either schedule or repeatEvery"),
        (
            {"name": "x", "queue": "q", "data": 1, "schedule": "* * * * *", "repeatEvery": 5},
            "Cron job must have either schedule or repeatEvery (not both)",
        ),
        ({"name": "x", "queue": "bad queue", "data": 1, "repeatEvery": 5}, "Queue name contains invalid"),
        ({"name": "x", "queue": "q", "repeatEvery": 5}, "data is required"),
        ({"queue": "q", "data": 1, "repeatEvery": 5}, "name is required"),
        ({"name": "x", "queue": "q", "data": 1, "schedule": "*/5 * * * *", "timezone": "Mars/X"}, "timezone"),
        # directories of the time zone database, and a name no file can have: 400s, not a 500 from zoneinfo
        ({"name": "x", "queue": "q", "data": 1, "schedule": "* * * * *", "timezone": "America"}, "Unknown timezone"),
        ({"name": "x", "queue": "q", "data": 1, "schedule": "* * * * *", "timezone": "A" * 300}, "Unknown timezone"),
        ({"name": "x", "queue": "q", "data": 1, "schedule": "every day"}, "Invalid cron expression"),
        # the reference's words for a wrong number of fields; an alias bunq does not know is named
        (
            {"name": "x", "queue": "q", "data": 1, "schedule": "* * * * * * *"},
            "Invalid cron expression: Cron expression must have 5 fields, or 6 fields with leading seconds",
        ),
        (
            {"name": "x", "queue": "q", "data": 1, "schedule": "@reboot"},
            "Invalid cron expression: unknown alias @reboot (known: @yearly, @annually, @monthly, @weekly, @daily,"
            " @midnight, @hourly)",
        ),
    ):
        r = api.post("/crons", json=body)
        assert r.status_code == 400 and error in r.json()["error"], r.text
    neither = api.post("/crons", json={"name": "x", "queue": "q", "data": 1}).json()
    assert neither["error"] == "Cron job must have either schedule or repeatEvery"  # "(not both)" only for both
    assert api.get("/crons/x").status_code == 404
    spec = {"name": queue, "queue": "q", "data": 1, "schedule": "0 9 * * *", "timezone": "America/New_York"}
    first = ok(api.post("/crons", json=spec))["cron"]
    again = ok(api.post("/crons", json={"name": queue, "queue": "q2", "data": 2, "schedule": "@hourly"}))["cron"]
    assert first["timezone"] == "America/New_York" and first["schedule"] == "0 9 * * *"
    assert again["queue"] == "q2" and again["schedule"] == "@hourly" and again["timezone"] == "UTC"
    assert [c for c in ok(api.get("/crons"))["crons"] if c["name"] == queue] == [again]
    assert ok(api.delete(f"/crons/{queue}")) == {"ok": True}
    assert api.delete(f"/crons/{queue}").status_code == 404
    assert api.get(f"/crons/{queue}").json() == {"ok": False, "error": "Cron job not found"}


# ---- webhooks -----------------------------------------------------------------------------------


def completed(api: Any, queue: str, **body: Any) -> str:
    job_id = push(api, queue, **body)
    assert pull(api, queue) is not None
    ok(api.post(f"/jobs/{job_id}/ack", json={"result": {"sent": True}}))
    return job_id


def test_webhook_deliveries_are_signed_filtered_retried_and_stop_when_disabled(
    cluster: Cluster, api: Any, queue: str, receiver: Receiver, barrier: Receiver
) -> None:
    body = {"url": receiver.url, "events": ["completed", "job.failed"], "queue": queue, "secret": SECRET}
    hook = ok(api.post("/webhooks", json=body))["data"]
    pushed = ok(api.post("/webhooks", json={"url": barrier.url, "events": ["pushed"], "queue": queue}))["data"]
    try:
        assert hook["url"] == receiver.url and hook["events"] == ["completed", "job.failed"]
        completed(api, queue + "-other")  # another queue: not delivered
        job_id = completed(api, queue)
        cluster.advance(1000)  # the first attempt gets a 500; the retry comes a second later
        signed = [d for d in receiver.deliveries if "webhook-signature" in d[0]]
        cluster.eventually(lambda: len([d for d in receiver.deliveries if "webhook-signature" in d[0]]) == 2, 3)
        signed = [d for d in receiver.deliveries if "webhook-signature" in d[0]]
        (h1, b1, s1), (h2, b2, s2) = signed
        assert (s1, s2) == (500, 200) and b1 == b2 and h1["webhook-id"] == h2["webhook-id"]
        payload = StandardWebhook(SECRET).verify(b2, {k: h2[k] for k in h2 if k.startswith("webhook-")})
        assert payload | {"event": "job.completed", "jobId": job_id, "queue": queue} == payload
        assert payload["data"] == {"sent": True}
        listed = ok(api.get("/webhooks"))["data"]
        mine = next(h for h in listed["webhooks"] if h["id"] == hook["webhookId"])
        assert mine["successCount"] == 1 and mine["enabled"] is True

        assert ok(api.put(f"/webhooks/{hook['webhookId']}/enabled", json={"enabled": False}))
        cluster.eventually(lambda: len(barrier.deliveries) == 1)  # the first job's `pushed`
        completed(api, queue)
        # once the job's events reached the other hook, a delivery to the disabled one would have started too
        cluster.eventually(lambda: len(barrier.deliveries) == 2)
        assert len(receiver.deliveries) == 2
        assert ok(api.get("/webhooks"))["data"]["stats"] == {"total": 2, "enabled": 1}
    finally:
        for added in (hook, pushed):
            ok(api.delete(f"/webhooks/{added['webhookId']}"))
    assert api.delete(f"/webhooks/{hook['webhookId']}").status_code == 404
    assert api.put("/webhooks/nope/enabled", json={"enabled": True}).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.0.192/", "http://[::127.0.0.1]/", "http://[::ffff:0:127.0.0.1]/", "http://[fec0::1]/",
        "http://localhost./", "http://a.localhost/", "ftp://x/", "http://u:p@example.com/", "http://10.0.0.1/h",
        "http://169.254.169.254/", "http://[::1]/h", "http://0xa000001/h",
    ],
)  # fmt: skip
def test_webhook_registration_refuses_internal_targets_on_their_face(api: Any, url: str) -> None:
    r = api.post("/webhooks", json={"url": url, "events": ["completed"]})
    assert r.status_code == 400 and r.json()["ok"] is False, url
    assert all(h["url"] != url for h in ok(api.get("/webhooks"))["data"]["webhooks"])


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.2/x", "Webhook URL cannot point to localhost ("),
        ("http://localhost/x", "Webhook URL cannot point to localhost"),
        ("http://[::1]/", "Webhook URL cannot point to localhost ("),
        ("http://10.1.2.3/", "Webhook URL cannot point to private IP ("),
        ("http://192.168.0.9/", "Webhook URL cannot point to private IP ("),
        ("http://169.254.169.254/", "Webhook URL cannot point to link-local IP ("),
        ("not a url", "Invalid URL format"), ("ftp://example.com/", "Webhook URL must use http or https"),
        # the .internal TLD (ICANN's private-use name, GCP's metadata.google.internal), as the reference
        ("http://metadata.google.internal/computeMetadata/v1/", "Webhook URL cannot point to cloud metadata endpoints"),
        ("http://Metadata.Google.Internal./", "Webhook URL cannot point to cloud metadata endpoints"),
        ("https://some-service.internal:8443/h", "Webhook URL cannot point to cloud metadata endpoints"),
    ],
)  # fmt: skip
def test_a_refused_webhook_says_why_in_the_reference_s_words(api: Any, url: str, said: str) -> None:
    r = api.post("/webhooks", json={"url": url, "events": ["completed"]})
    assert r.status_code == 400 and r.json()["error"].startswith(said), r.json()


def test_webhook_registration_looks_nothing_up_and_checks_events(api: Any) -> None:
    assert api.post("/webhooks", json={"url": "http://example.com", "events": ["done"]}).status_code == 400
    added = api.post("/webhooks", json={"url": "https://does-not-exist.invalid/hook", "events": ["completed"]})
    assert added.status_code == 200 and added.json()["data"]["url"] == "https://does-not-exist.invalid/hook"
    assert ok(api.delete(f"/webhooks/{added.json()['data']['webhookId']}"))


# ---- workers ------------------------------------------------------------------------------------


def test_workers_count_their_jobs_and_expire_without_heartbeats(cluster: Cluster, api: Any, queue: str) -> None:
    worker = ok(api.post("/workers", json={"name": queue, "queues": [queue]}))["data"]
    worker_id = worker["workerId"]
    assert worker["name"] == queue and worker["queues"] == [queue]
    a = push(api, queue)
    b = push(api, queue, maxAttempts=1)
    got = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 2, "owner": worker_id}))
    tokens = dict(zip([j["id"] for j in got["jobs"]], got["tokens"], strict=True))
    ok(api.post(f"/jobs/{a}/ack", json={"token": tokens[a]}))
    ok(api.post(f"/jobs/{b}/fail", json={"token": tokens[b], "error": "x"}))

    def mine() -> list[dict[str, Any]]:
        return [w for w in ok(api.get("/workers"))["data"]["workers"] if w["id"] == worker_id]

    cluster.eventually(lambda: [(w["processedJobs"], w["failedJobs"], w["activeJobs"]) for w in mine()] == [(1, 1, 0)])
    cluster.advance(800)
    assert ok(api.post(f"/workers/{worker_id}/heartbeat"))
    cluster.advance(800)
    assert mine(), "a heartbeat keeps a worker registered"
    assert mine()[0]["uptime"] >= 1600, "milliseconds since it registered, as the reference counts"
    assert api.post("/workers/nope/heartbeat").status_code == 404
    reported = {"activeJobs": 2, "processed": 5, "failed": 1}  # a worker's own counts replace the tallied ones
    ok(api.post(f"/workers/{worker_id}/heartbeat", json=reported))
    assert [(w["activeJobs"], w["processedJobs"], w["failedJobs"]) for w in mine()] == [(2, 5, 1)]
    stats = ok(api.get("/workers"))["data"]["stats"]
    assert stats["active"] >= 1
    for bad in ({"processed": -1}, {"activeJobs": "x"}, {"failed": 1.5}):
        assert api.post(f"/workers/{worker_id}/heartbeat", json=bad).status_code == 400
    assert [(w["activeJobs"], w["processedJobs"], w["failedJobs"]) for w in mine()] == [(2, 5, 1)]
    cluster.advance(1600)  # past BUNQ_WORKER_TIMEOUT_MS since its last heartbeat
    cluster.eventually(lambda: mine() == [])
    second = ok(api.post("/workers", json={"name": queue + "-2"}))["data"]["workerId"]
    assert ok(api.delete(f"/workers/{second}"))
    assert api.delete(f"/workers/{second}").status_code == 404
