"""Crons, webhooks and workers through `bunq serve`: firing, limits, restarts, signed deliveries, expiry."""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook

from bunq.aggregator.crons import Cron, fire_seed
from bunq.routing import new_job_id, slot_of
from bunq.settings import Settings
from tests.integration.test_processes import wait_until
from tests.support import BunqServer

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"a-shared-secret-of-32-bytes-long").decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BunqServer]:
    srv = BunqServer(tmp_path / "data", shards=2, BUNQ_WEBHOOK_ALLOW="127.0.0.1/32", BUNQ_WORKER_TIMEOUT_MS="1500")
    srv.start()
    yield srv
    srv.stop()


class Receiver:
    """A local webhook receiver: records every delivery; answers 500 to the first `fail_first` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.deliveries) < receiver.fail_first else 200
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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


def test_cron_validation_and_updates(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for body, error in (
            ({"name": "x", "queue": "q", "data": 1}, "Cron job must have either schedule or repeatEvery (not both)"),
            ({"name": "x", "queue": "q", "data": 1, "schedule": "* * * * *", "repeatEvery": 5}, "not both"),
            ({"name": "x", "queue": "bad queue", "data": 1, "repeatEvery": 5}, "Queue name contains invalid"),
            ({"name": "x", "queue": "q", "repeatEvery": 5}, "data is required"),
            ({"queue": "q", "data": 1, "repeatEvery": 5}, "name is required"),
            ({"name": "x", "queue": "q", "data": 1, "schedule": "*/5 * * * *", "timezone": "Mars/X"}, "timezone"),
        ):
            r = c.post("/crons", json=body)
            assert r.status_code == 400 and error in r.json()["error"], r.text
        first = c.post("/crons", json={"name": "ny", "queue": "q", "data": 1, "schedule": "0 9 * * *",
                                       "timezone": "America/New_York"}).json()["cron"]  # fmt: skip
        again = c.post("/crons", json={"name": "ny", "queue": "q2", "data": 2, "schedule": "@hourly"}).json()["cron"]
        assert first["timezone"] == "America/New_York" and again["queue"] == "q2" and again["schedule"] == "@hourly"
        assert [cr["name"] for cr in c.get("/crons").json()["crons"]] == ["ny"]
        assert c.delete("/crons/ny").json() == {"ok": True}
        assert c.delete("/crons/ny").status_code == 404


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


def test_webhook_registration_refuses_internal_targets_on_their_face_and_accepts_names(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for url in (
            "http://192.0.0.192/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:127.0.0.1]/",
            "http://[fec0::1]/",
            "http://localhost./",
            "http://a.localhost/",
            "ftp://x/",
            "http://u:p@example.com/",
            "http://10.0.0.1/h",
            "http://169.254.169.254/",
            "http://[::1]/h",
            "http://0xa000001/h",
        ):
            r = c.post("/webhooks", json={"url": url, "events": ["completed"]})
            assert r.status_code == 400 and r.json()["ok"] is False, url
        assert c.post("/webhooks", json={"url": "http://example.com", "events": ["done"]}).status_code == 400
        assert c.get("/webhooks").json()["data"]["stats"]["total"] == 0
        # registration looks nothing up: a name that does not resolve (yet) is accepted
        added = c.post("/webhooks", json={"url": "https://does-not-exist.invalid/hook", "events": ["completed"]})
        assert added.status_code == 200 and added.json()["data"]["url"] == "https://does-not-exist.invalid/hook"
        assert c.delete(f"/webhooks/{added.json()['data']['webhookId']}").json()["ok"]


def test_workers_are_listed_counted_and_expired(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        worker = c.post("/workers", json={"name": "mailer", "queues": ["mail"]}).json()["data"]
        worker_id = worker["workerId"]
        a = c.post("/queues/mail/jobs", json={"data": 1}).json()["id"]
        b = c.post("/queues/mail/jobs", json={"data": 2, "maxAttempts": 1}).json()["id"]
        got = c.post("/queues/mail/jobs/pull-batch", json={"count": 2, "owner": worker_id}).json()
        tokens = dict(zip([j["id"] for j in got["jobs"]], got["tokens"], strict=True))
        c.post(f"/jobs/{a}/ack", json={"token": tokens[a]})
        c.post(f"/jobs/{b}/fail", json={"token": tokens[b], "error": "x"})

        def counted() -> bool:
            w = c.get("/workers").json()["data"]["workers"][0]
            return bool(w["processedJobs"] == 1 and w["failedJobs"] == 1 and w["activeJobs"] == 0)

        wait_until(counted)
        assert c.post(f"/workers/{worker_id}/heartbeat").json()["ok"]
        assert c.post("/workers/nope/heartbeat").status_code == 404
        wait_until(lambda: c.get("/workers").json()["data"]["workers"] == [], timeout=10)  # no heartbeat: dropped
        second = c.post("/workers", json={"name": "other"}).json()["data"]["workerId"]
        assert c.delete(f"/workers/{second}").json()["ok"]
        assert c.delete(f"/workers/{second}").status_code == 404
