"""Queue limits and settings through `bunq serve` with several front processes: rate and concurrency
limits under concurrent workers, and settings that survive restarts and resharding."""

from __future__ import annotations

import bisect
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import BunqServer

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.integration, pytest.mark.bunq(fronts=2)]


def fill(client: httpx.Client, queue: str, n: int) -> None:
    for start in range(0, n, 500):
        jobs = [{"data": i} for i in range(start, min(n, start + 500))]
        assert client.post(f"/queues/{queue}/jobs/bulk", json={"jobs": jobs}).json()["ok"]


def test_rate_limit_holds_across_fronts_and_workers(server: BunqServer) -> None:
    """The limit is a sliding 1 s window on the shard's clock, so it is checked on the times the
    shard handed each job out (`startedAt`), not on when a client saw them: client-side timestamps
    carry each reply's latency, and one slow first reply lets a sixth window into "5 seconds"."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        fill(c, "rated", 1000)
        assert c.put("/queues/rated/rate-limit", json={"limit": 50}).json()["ok"]
    started: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + 5.5

    def worker() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while time.monotonic() < stop:
                jobs = c.post("/queues/rated/jobs/pull-batch", json={"count": 5}).json()["jobs"]
                with lock:
                    started.extend(j["startedAt"] for j in jobs)
                if jobs:
                    c.post("/jobs/ack-batch", json={"ids": [j["id"] for j in jobs]})

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    started.sort()
    busiest = max(i + 1 - bisect.bisect_right(started, s - 1000) for i, s in enumerate(started))
    span = started[-1] - started[0]
    log.info(f"rate limit 50/s: {len(started)} jobs over {span} ms, busiest 1 s window {busiest}")
    assert busiest <= 50
    # Six workers pulling without pause for 5.5 s open at least five windows, each filled to the limit.
    assert len(started) >= 250


def test_a_long_poll_on_a_rate_limited_queue_gets_its_job_when_the_window_opens(server: BunqServer) -> None:
    """A pull parked while the window is full, with jobs waiting, is answered as the window opens, not
    left empty-handed until its own timeout (a worker polling 30 s would otherwise stall that long)."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.put("/queues/rl-poll/rate-limit", json={"limit": 1}).json()["ok"]
        fill(c, "rl-poll", 2)
        assert c.get("/queues/rl-poll/jobs").json()["job"]["data"] == 0  # fills the window
        started = time.monotonic()
        job = c.get("/queues/rl-poll/jobs", params={"timeout": 5000}).json()["job"]
        waited = time.monotonic() - started
        assert job is not None and job["data"] == 1
        assert 0.5 < waited < 2.5, waited
        # a higher limit opens the window at once for a parked pull
        fill(c, "rl-poll", 2)
        time.sleep(1.1)  # past the window of the pull above
        assert c.get("/queues/rl-poll/jobs").json()["job"] is not None  # the window (1) is full again
        parked: dict[str, object] = {}

        def poll() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as other:
                begun = time.monotonic()
                parked["job"] = other.get("/queues/rl-poll/jobs", params={"timeout": 5000}).json()["job"]
                parked["waited"] = time.monotonic() - begun

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.2)
        assert c.put("/queues/rl-poll/rate-limit", json={"limit": 10}).json()["ok"]
        thread.join(10)
        assert parked["job"] is not None and float(parked["waited"]) < 0.6, parked  # type: ignore[arg-type]


def test_concurrency_limit_never_exceeded(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        fill(c, "narrow", 60)
        assert c.put("/queues/narrow/concurrency", json={"limit": 2}).json()["ok"]
    active = 0
    worst = 0
    lock = threading.Lock()
    done: list[int] = []
    samples: list[int] = []

    def worker() -> None:
        nonlocal active, worst
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while len(done) < 60:
                job = c.get("/queues/narrow/jobs", params={"timeout": 200}).json()["job"]
                if job is None:
                    continue
                with lock:
                    active += 1
                    worst = max(worst, active)
                time.sleep(0.01)
                with lock:
                    active -= 1
                    done.append(job["data"])
                c.post(f"/jobs/{job['id']}/ack", json={})

    def monitor() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while len(done) < 60:
                samples.append(c.get("/queues/narrow/counts").json()["counts"]["active"])

    threads = [threading.Thread(target=worker) for _ in range(6)] + [threading.Thread(target=monitor)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(done) == list(range(60))
    assert worst <= 2 and max(samples) <= 2


def test_settings_survive_restart_and_resharding(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=2)
    server.start()
    queues = [f"cfg-{i}" for i in range(8)]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for q in queues:
                c.post(f"/queues/{q}/jobs", json={"data": 1})
                c.post(f"/queues/{q}/pause")
                c.put(f"/queues/{q}/rate-limit", json={"limit": 7})
                c.put(f"/queues/{q}/concurrency", json={"limit": 3})
                c.put(f"/queues/{q}/stall-config", json={"config": {"maxStalls": 9}})
                c.put(f"/queues/{q}/dlq-config", json={"config": {"maxEntries": 42, "autoRetry": True}})
    finally:
        server.stop()
    for shards in (3, 1):
        server.start(BUNQ_SHARDS=str(shards))
        try:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                assert set(queues) <= set(c.get("/queues").json()["queues"])
                for q in queues:
                    assert c.get(f"/queues/{q}/paused").json()["paused"] is True
                    assert c.get(f"/queues/{q}/jobs").json()["job"] is None
                    assert c.get(f"/queues/{q}/stall-config").json()["config"]["maxStalls"] == 9
                    dlq = c.get(f"/queues/{q}/dlq-config").json()["config"]
                    assert dlq["maxEntries"] == 42 and dlq["autoRetry"] is True
        finally:
            server.stop()
    server.start(BUNQ_SHARDS="2")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            q = queues[0]
            c.post(f"/queues/{q}/resume")
            c.post(f"/queues/{q}/jobs/bulk", json={"jobs": [{"data": i} for i in range(20)]})
            got = c.post(f"/queues/{q}/jobs/pull-batch", json={"count": 20}).json()["jobs"]
            assert len(got) == 3  # concurrency 3 (and rate 7) survived both reshards
    finally:
        server.stop()
