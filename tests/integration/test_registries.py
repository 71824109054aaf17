"""Crons, webhooks and workers through `bunq serve`: firing, limits, restarts, signed deliveries, expiry."""

from __future__ import annotations

import time

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook

from bunq.aggregator.crons import Cron, fire_seed
from bunq.routing import new_job_id, slot_of
from bunq.settings import Settings
from tests.support.processes import BunqServer, wait_until
from tests.support.webhooks import SECRET, Receiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.bunq(BUNQ_WEBHOOK_ALLOW="127.0.0.1/32", BUNQ_WORKER_TIMEOUT_MS="1500"),
]


def test_repeat_every_cron_fires_on_time_and_stops_at_max_limit(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        body = {"name": "tick", "queue": "ticks", "data": {"n": 1}, "repeatEvery": 300, "maxLimit": 3, "priority": 4}
        created = c.post("/crons", json=body).json()
        assert created["ok"] and created["cron"]["nextRun"] > 0 and created["cron"]["timezone"] == "UTC"
        wait_until(lambda: c.get("/queues/ticks/counts").json()["counts"]["waiting"] == 3, timeout=10)
        wait_until(lambda: c.get("/crons/tick").status_code == 404)
        time.sleep(0.7)
        assert c.get("/queues/ticks/counts").json()["counts"]["waiting"] == 3
        job = c.get("/queues/ticks/jobs").json()["job"]
        assert job["data"] == {"n": 1} and job["priority"] == 4
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/crons/tick").status_code == 404  # removed from storage too


def test_a_restart_does_not_double_fire(server: BunqServer) -> None:
    """Each fire makes one job whose id is derived from its scheduled time, and counts once. A second fire
    of one time (say, replayed after a restart) would either count an execution without a job of its own
    (the id already exists), leaving fewer jobs than `maxLimit`, or make a job with another id, leaving
    fewer distinct scheduled times than jobs. Either way the totals below stop matching."""
    limit = 8
    cron = {"name": "steady", "queue": "steady", "data": 1, "repeatEvery": 300, "maxLimit": limit}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.post("/crons", json=cron)
        wait_until(lambda: c.get("/crons/steady").json()["cron"]["executions"] >= 3)
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        wait_until(lambda: c.get("/crons/steady").status_code == 404, timeout=20)  # maxLimit reached
        jobs = c.get("/queues/steady/jobs/list").json()["jobs"]
    ids = [j["id"] for j in jobs]
    scheduled = [int(i.replace("-", "")[:12], 16) for i in ids]  # a UUID v7's first 48 bits: the ms
    slot = slot_of("steady", Settings.from_env({}).slots)
    named = Cron("steady", "steady", b"1", None, 300)
    assert len(ids) == limit, ids
    assert len(set(scheduled)) == limit, sorted(scheduled)
    assert sorted(ids) == sorted(new_job_id(slot, ms, fire_seed(named, ms)) for ms in scheduled)


def test_webhook_deliveries_are_signed_retried_and_respect_enabled(server: BunqServer) -> None:
    receiver = Receiver(fail_first=1)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            body = {"url": receiver.url, "events": ["completed", "job.failed"], "queue": "hooked", "secret": SECRET}
            added = c.post("/webhooks", json=body).json()
            hook_id = added["data"]["webhookId"]
            job_id = c.post("/queues/hooked/jobs", json={"data": 1, "maxAttempts": 1}).json()["id"]
            c.post("/queues/other/jobs", json={"data": 1})
            c.get("/queues/hooked/jobs")
            c.get("/queues/other/jobs")
            c.post(f"/jobs/{job_id}/ack", json={"result": {"sent": True}})
            wait_until(lambda: len(receiver.deliveries) == 2, timeout=15)  # a 500, then the retry
            (h1, b1, s1), (h2, b2, s2) = receiver.deliveries
            assert (s1, s2) == (500, 200) and b1 == b2 and h1["webhook-id"] == h2["webhook-id"]
            payload = StandardWebhook(SECRET).verify(b2, {k: h2[k] for k in h2 if k.startswith("webhook-")})
            assert payload | {"event": "job.completed", "jobId": job_id, "queue": "hooked"} == payload
            assert payload["data"] == {"sent": True}
            assert c.put(f"/webhooks/{hook_id}/enabled", json={"enabled": False}).json()["ok"]
            other = c.post("/queues/hooked/jobs", json={"data": 2}).json()["id"]
            c.get("/queues/hooked/jobs")
            c.post(f"/jobs/{other}/ack", json={})
            time.sleep(1.0)
            assert len(receiver.deliveries) == 2
            listed = c.get("/webhooks").json()["data"]
            assert listed["stats"] == {"total": 1, "enabled": 0}
        server.stop()
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert [h["id"] for h in c.get("/webhooks").json()["data"]["webhooks"]] == [hook_id]
            assert c.delete(f"/webhooks/{hook_id}").json()["ok"]
            assert c.delete(f"/webhooks/{hook_id}").status_code == 404
            assert c.put("/webhooks/nope/enabled", json={"enabled": True}).status_code == 404
    finally:
        receiver.close()


def test_names_and_ids_with_a_slash_are_addressed_through_their_encoded_path(server: BunqServer) -> None:
    """A cron named `reports/nightly` (or a worker id with a slash) is created from a body; the paths that read,
    heartbeat and delete it carry the name URL-encoded (`%2F`, as the SDK writes it), and must find it,
    as must a name holding the text `%2F` itself (sent as `%252F`)."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for name, path in (("reports/nightly", "reports%2Fnightly"), ("a%2Fb", "a%252Fb"), ("x/%/y", "x%2F%25%2Fy")):
            cron = {"name": name, "queue": "slashes", "data": 1, "repeatEvery": 600_000}
            assert c.post("/crons", json=cron).json()["cron"]["name"] == name
            assert c.get(f"/crons/{path}").json()["cron"]["name"] == name
            assert c.delete(f"/crons/{path}").json() == {"ok": True}
            assert c.get(f"/crons/{path}").status_code == 404
        worker = {"name": "w", "queues": ["slashes"], "workerId": "pool/1"}
        assert c.post("/workers", json=worker).json()["data"]["workerId"] == "pool/1"
        assert c.post("/workers/pool%2F1/heartbeat").json()["ok"]
        assert c.delete("/workers/pool%2F1").json()["ok"]
        assert c.get("/workers").json()["data"]["workers"] == []
        # a queue name with an encoded slash is still refused for its characters
        refused = c.put("/queues/a%2Fb/rate-limit", json={"limit": 1})
        assert refused.status_code == 400 and refused.json()["error"] == "Queue name contains invalid characters"
