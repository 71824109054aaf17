"""The reference's extras a bunqueue user relies on, against `bunq serve`: `GET /queues/summary`,
`GET /queues/:q/jobs/list?states=a,b` and the `bunqueue_*` Prometheus names their dashboards scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import BunqServer

pytestmark = pytest.mark.integration


@pytest.fixture
def api(live_server: BunqServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def _fill(api: httpx.Client, queue: str) -> None:
    """Three waiting (one of priority 5, then one pulled: active) and one delayed."""
    for body in ({"data": {"n": 1}}, {"data": {"n": 2}}, {"data": {"n": 3}, "delay": 600_000}, {"data": {"n": 4}}):
        assert api.post(f"/queues/{queue}/jobs", json=body).json()["ok"]
        time.sleep(0.003)  # each its own createdAt millisecond: the list's order is theirs
    assert api.post(f"/queues/{queue}/jobs", json={"data": {"n": 5}, "priority": 5}).json()["ok"]
    assert api.get(f"/queues/{queue}/jobs").json()["job"]["data"] == {"n": 5}


def test_queues_summary_is_a_bare_array_of_queues_with_counts_and_paused(api: httpx.Client, queue: str) -> None:
    _fill(api, queue)
    assert api.post(f"/queues/{queue}/pause").json() == {"ok": True}
    summary = api.get("/queues/summary").json()
    assert isinstance(summary, list)
    mine = next(entry for entry in summary if entry["name"] == queue)
    assert mine == {
        "name": queue,
        "paused": True,
        "counts": {"waiting": 3, "prioritized": 0, "active": 1, "completed": 0, "failed": 0, "delayed": 1},
        "rateLimit": None,
        "concurrency": None,
    }
    assert [entry["name"] for entry in summary] == sorted(entry["name"] for entry in summary)
    api.post(f"/queues/{queue}/resume")
    api.put(f"/queues/{queue}/rate-limit", json={"limit": 50})
    api.put(f"/queues/{queue}/concurrency", json={"limit": 4})
    mine = next(e for e in api.get("/queues/summary").json() if e["name"] == queue)
    assert (mine["paused"], mine["rateLimit"], mine["concurrency"]) == (False, 50, 4)


def test_jobs_list_takes_several_states_oldest_first(api: httpx.Client, queue: str) -> None:
    _fill(api, queue)

    def listed(query: str) -> list[tuple[str, int]]:
        reply = api.get(f"/queues/{queue}/jobs/list?{query}").json()
        assert reply["ok"] is True
        return [(job["state"], job["data"]["n"]) for job in reply["jobs"]]

    assert listed("states=delayed,waiting") == [("waiting", 1), ("waiting", 2), ("delayed", 3), ("waiting", 4)]
    assert listed("states=active") == [("active", 5)]
    assert listed("states=waiting,delayed&limit=2&offset=1") == [("waiting", 2), ("delayed", 3)]
    assert listed("states=prioritized,bogus") == []  # states it does not know match nothing, as the reference
    assert listed("state=delayed") == [("delayed", 3)]
    assert api.get(f"/queues/{queue}/jobs/list?state=bogus").status_code == 400


def _scrape(api: httpx.Client) -> dict[str, float]:
    text = api.get("/prometheus").text
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")}


def test_prometheus_counts_the_registries_under_the_reference_names(api: httpx.Client, queue: str) -> None:
    before = _scrape(api)
    worker = api.post("/workers", json={"name": "scraped", "queues": [queue], "concurrency": 3}).json()
    worker_id = worker["data"]["workerId"]
    cron = {"name": f"{queue}-cron", "queue": queue, "schedule": "0 0 1 1 *", "data": {}}
    assert api.post("/crons", json=cron).json()["ok"]
    try:
        assert api.post(f"/workers/{worker_id}/heartbeat", json={"activeJobs": 2, "processed": 7}).json()["ok"]
        after = _scrape(api)
        assert after["bunqueue_workers_registered"] == before["bunqueue_workers_registered"] + 1
        assert after["bunqueue_workers_active"] == after["bunqueue_workers_registered"]
        assert after["bunqueue_worker_concurrency_slots"] == before["bunqueue_worker_concurrency_slots"] + 3
        assert after["bunqueue_worker_active_jobs"] == before["bunqueue_worker_active_jobs"] + 2
        assert after["bunqueue_workers_processed_total"] == before["bunqueue_workers_processed_total"] + 7
        assert after["bunqueue_cron_jobs_registered"] == before["bunqueue_cron_jobs_registered"] + 1
        assert "bunqueue_webhooks_registered" in after and "bunqueue_webhooks_enabled" in after
        assert 'bunqueue_connections{transport="websocket"}' in after
    finally:
        api.delete(f"/workers/{worker_id}")
        api.delete(f"/crons/{queue}-cron")
    assert _scrape(api)["bunqueue_workers_registered"] == before["bunqueue_workers_registered"]


def test_prometheus_serves_the_reference_names_beside_bunqs_own(api: httpx.Client, queue: str) -> None:
    _fill(api, queue)
    text = api.get("/prometheus").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "bunq_queue_jobs" in families
    per_queue = {
        name: next(s.value for s in families[name].samples if s.labels == {"queue": queue})
        for name in (
            "bunqueue_queue_jobs_waiting",
            "bunqueue_queue_jobs_active",
            "bunqueue_queue_jobs_delayed",
            "bunqueue_queue_jobs_dlq",
        )
    }
    assert per_queue == {
        "bunqueue_queue_jobs_waiting": 3,
        "bunqueue_queue_jobs_active": 1,
        "bunqueue_queue_jobs_delayed": 1,
        "bunqueue_queue_jobs_dlq": 0,
    }
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(lines["bunqueue_jobs_pushed_total"]) >= 5 and float(lines["bunqueue_jobs_waiting"]) >= 3
    assert "# TYPE bunqueue_jobs_pushed_total counter" in text and "# TYPE bunqueue_jobs_waiting gauge" in text
    for name in ("bunqueue_uptime_seconds", "bunqueue_process_resident_memory_bytes", "bunqueue_storage_disk_full"):
        assert name in lines
