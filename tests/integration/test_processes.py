"""`bunq serve` as a user runs it: crashes, restarts, resharding and events over real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.sync.client import connect

from tests.support.processes import BunqServer, wait_until

pytestmark = pytest.mark.integration


def counts(client: httpx.Client, queue: str) -> dict[str, int]:
    body = client.get(f"/queues/{queue}/counts").json()
    assert body["ok"] is True, body
    result: dict[str, int] = body["counts"]
    return result


def test_durable_jobs_survive_kill_9_of_every_shard(server: BunqServer) -> None:
    queues = [f"durable-{i}" for i in range(6)]
    pushed: dict[str, list[str]] = {q: [] for q in queues}
    errors: list[str] = []

    def producer(queue: str) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for i in range(40):
                r = c.post(f"/queues/{queue}/jobs", json={"data": {"i": i}, "durable": True})
                if r.status_code == 200:
                    pushed[queue].append(r.json()["id"])
                else:
                    errors.append(r.text)

    threads = [threading.Thread(target=producer, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for name, pid in server.children().items():
        if name.startswith("shard-"):
            os.kill(pid, signal.SIGKILL)
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        wait_until(lambda: all(counts(c, q)["waiting"] == 40 for q in queues))
        for _queue, ids in pushed.items():
            for job_id in ids[:5] + ids[-5:]:
                assert c.get(f"/jobs/{job_id}/state").json()["state"] == "waiting"


def test_a_killed_shard_is_restarted_by_the_supervisor(server: BunqServer) -> None:
    before = server.children()["shard-1"]
    os.kill(before, signal.SIGKILL)
    wait_until(lambda: server.children().get("shard-1") not in (None, before))
    server.wait_ready()


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_front_killed_with_sigkill_takes_its_workers_with_it(tmp_path: Path) -> None:
    """With several front workers, uvicorn's manager spawns them: killed with SIGKILL, it used to leave them
    serving the port outside the supervisor (whose new front then could not bind it), routing by a shard
    count a restart might have changed."""
    server = BunqServer(tmp_path / "data", shards=1, fronts=2)
    server.start()
    workers: list[int] = []
    try:
        manager = server.children()["front"]
        wait_until(lambda: len(_children_of(manager)) >= 2)
        workers = _children_of(manager)
        os.kill(manager, signal.SIGKILL)
        wait_until(lambda: not any(_alive(w) for w in workers), timeout=20)
        wait_until(lambda: server.children().get("front") not in (None, manager), timeout=30)
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.post("/queues/q/jobs", json={"data": 1}).status_code == 200
    finally:
        server.stop()
        for pid in workers:  # whatever happened, none is left behind by the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_port_in_use_ends_serve_at_once_with_one_clear_line(tmp_path: Path) -> None:
    """Not a front restarted every half second for ever, each failing to bind; nothing is left running."""
    for what in ("HTTP", "TCP"):
        server = BunqServer(tmp_path / what, shards=1)
        port = server.port if what == "HTTP" else server.tcp_port
        with socket.create_server(("127.0.0.1", port)):
            result = subprocess.run(
                [sys.executable, "-m", "bunq.cli", "serve"], env=server.env, capture_output=True, timeout=30
            )
        assert result.returncode == 1
        assert f"bunq: cannot listen for {what} on 127.0.0.1:{port}: Address already in use" in result.stderr.decode()
        assert not (tmp_path / what).exists()  # refused before preparing storage


def test_clean_restart_keeps_every_state(server: BunqServer) -> None:
    q = "restart"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ids = c.post(
            f"/queues/{q}/jobs/bulk", json={"jobs": [{"data": i, "priority": 10 - i} for i in range(6)]}
        ).json()["ids"]
        delayed = c.post(f"/queues/{q}/jobs", json={"data": "later", "delay": 3_600_000}).json()["id"]
        done, active = (c.get(f"/queues/{q}/jobs").json()["job"]["id"] for _ in range(2))
        c.post(f"/jobs/{done}/ack", json={"result": {"r": 1}})
    assert [done, active] == ids[:2]
    assert server.stop() == 0
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert counts(c, q) | {"waiting": 5, "delayed": 1, "active": 0, "completed": 1} == counts(c, q)
        assert c.get(f"/jobs/{done}/result").json()["result"] == {"r": 1}
        assert c.get(f"/jobs/{delayed}/state").json()["state"] == "delayed"
        requeued = c.get(f"/jobs/{active}").json()["job"]
        assert requeued["state"] == "waiting" and requeued["attempts"] == 1


def test_active_job_out_of_attempts_goes_to_dlq_on_restart(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        job_id = c.post("/queues/last-try/jobs", json={"data": 1, "maxAttempts": 1}).json()["id"]
        assert c.get("/queues/last-try/jobs").json()["job"]["id"] == job_id
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get(f"/jobs/{job_id}/state").json()["state"] == "failed"
        assert c.get("/queues/last-try/dlq").json()["jobs"][0]["id"] == job_id


def test_changing_the_shard_count_loses_nothing(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=2)
    server.start()
    queues = [f"reshard-{i}" for i in range(24)]
    expected: dict[str, dict[str, Any]] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for q in queues:
                ids = c.post(f"/queues/{q}/jobs/bulk", json={"jobs": [{"data": n, "maxAttempts": 1} for n in range(3)]})
                first, second, third = ids.json()["ids"]
                pulled = c.post(f"/queues/{q}/jobs/pull-batch", json={"count": 2}).json()["jobs"]
                assert [j["id"] for j in pulled] == [first, second]
                c.post(f"/jobs/{first}/ack", json={"result": q})
                c.post(f"/jobs/{second}/fail", json={"error": "bad"})
                expected[q] = {"completed": first, "dlq": second, "waiting": third}
            c.post("/queues/custom-q/jobs", json={"data": 1, "jobId": "my-custom-id"})
    finally:
        server.stop()
    for shards in (3, 1, 2):
        server.start(BUNQ_SHARDS=str(shards))
        try:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                for q, ids in expected.items():
                    assert c.get(f"/jobs/{ids['completed']}/result").json()["result"] == q, shards
                    assert c.get(f"/jobs/{ids['waiting']}/state").json()["state"] == "waiting"
                    assert c.get(f"/queues/{q}/dlq").json()["jobs"][0]["id"] == ids["dlq"]
                    assert counts(c, q) | {"waiting": 1, "completed": 1, "failed": 1} == counts(c, q)
                assert c.get("/jobs/custom/my-custom-id").json()["job"]["queue"] == "custom-q"
        finally:
            server.stop()
    files = sorted(p.name for p in (tmp_path / "data").glob("shard-*.db"))
    assert files == ["shard-0.db", "shard-1.db"]


def test_sse_streams_job_events_in_the_legacy_format(server: BunqServer) -> None:
    received: list[dict[str, Any]] = []
    filtered: list[dict[str, Any]] = []
    connected = threading.Barrier(3, timeout=20)

    def listen(path: str, sink: list[dict[str, Any]], wanted: int) -> None:
        with httpx.stream("GET", server.url + path, timeout=20) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = msgspec.json.decode(line[6:])
                if event.get("connected"):
                    connected.wait()
                    continue
                sink.append(event)
                if len(sink) >= wanted:
                    return

    threads = [
        threading.Thread(target=listen, args=("/events", received, 4)),
        threading.Thread(target=listen, args=("/events/queues/sse-a", filtered, 3)),
    ]
    for t in threads:
        t.start()
    connected.wait()
    time.sleep(0.3)  # let the subscription travel up to the shards
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.post("/queues/sse-b/jobs", json={"data": 0})
        job_id = c.post("/queues/sse-a/jobs", json={"data": 1}).json()["id"]
        c.get("/queues/sse-a/jobs")
        c.post(f"/jobs/{job_id}/ack", json={})
    for t in threads:
        t.join(20)
    assert [e["eventType"] for e in filtered] == ["pushed", "pulled", "completed"]
    assert all(e["jobId"] == job_id and e["queue"] == "sse-a" for e in filtered)
    assert {e["queue"] for e in received} == {"sse-a", "sse-b"}


def test_a_shard_that_does_not_answer_degrades_health_and_stops_no_periodic_event(tmp_path: Path) -> None:
    """A hung shard (stopped, so the supervisor sees it alive) leaves /health answering `degraded`, not
    503, and `stats:snapshot` keeps coming from the others; once it answers again all is healthy."""
    server = BunqServer(tmp_path / "data", shards=2, BUNQ_REQUEST_TIMEOUT_MS="1000").start()
    try:
        shard = server.children()["shard-1"]
        with connect(server.url.replace("http", "ws") + "/ws") as ws, httpx.Client(base_url=server.url) as c:
            ws.send(json.dumps({"cmd": "Subscribe", "events": ["stats:snapshot"], "reqId": "s"}))
            assert json.loads(ws.recv(timeout=10))["ok"] is True
            os.kill(shard, signal.SIGSTOP)
            try:
                r = c.get("/health", timeout=10)
                assert r.status_code == 200 and r.json()["status"] == "degraded", r.text
                snapshots = 0
                deadline = time.monotonic() + 20
                while snapshots < 2 and time.monotonic() < deadline:
                    message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                    snapshots += message.get("event") == "stats:snapshot"
                assert snapshots == 2
            finally:
                os.kill(shard, signal.SIGCONT)
            wait_until(lambda: c.get("/health", timeout=10).json()["status"] == "healthy")
    finally:
        server.stop()


def test_probes_and_scrapes_answer_promptly_while_a_shard_hangs(tmp_path: Path) -> None:
    """A load balancer's health check, a readiness probe and a Prometheus scrape each give up after a few
    seconds (Kubernetes' default probe timeout is 1 s, Prometheus' scrape timeout 10 s): they get their
    answer about a hung shard (degraded, 503, `bunq_shards_up 1`) within the probe wait, not after the
    request timeout (here 30 s), which would read as the whole server being gone."""
    server = BunqServer(tmp_path / "data", shards=2, BUNQ_REQUEST_TIMEOUT_MS="30000").start()
    try:
        shard = server.children()["shard-1"]
        with httpx.Client(base_url=server.url, timeout=60) as c:
            os.kill(shard, signal.SIGSTOP)
            try:
                for path in ("/health", "/ready", "/prometheus"):
                    started = time.monotonic()
                    r = c.get(path)
                    took = time.monotonic() - started
                    assert took < 4, (path, took)
                    if path == "/health":
                        assert r.status_code == 200 and r.json()["status"] == "degraded"
                    elif path == "/ready":
                        assert r.status_code == 503 and r.json() == {"ok": False, "ready": False}
                    else:
                        assert r.status_code == 200 and "bunq_shards_up 1.0" in r.text
            finally:
                os.kill(shard, signal.SIGCONT)
            wait_until(lambda: c.get("/ready").status_code == 200)
            assert "bunq_shards_up 2.0" in c.get("/prometheus").text
    finally:
        server.stop()


def test_a_scrape_does_not_wait_for_a_hung_aggregator(tmp_path: Path) -> None:
    """With the aggregator stopped, /prometheus still answers, with the shards' figures and
    `bunq_aggregator_up 0`, rather than after a request timeout (here longer than the client waits);
    once the aggregator answers again its counter is back."""
    server = BunqServer(tmp_path / "data", shards=1, BUNQ_REQUEST_TIMEOUT_MS="120000").start()
    try:
        aggregator = server.children()["aggregator"]
        with httpx.Client(base_url=server.url, timeout=30) as c:
            os.kill(aggregator, signal.SIGSTOP)
            try:
                text = c.get("/prometheus").text
            finally:
                os.kill(aggregator, signal.SIGCONT)
            assert "bunq_aggregator_up 0.0" in text and "bunq_aggregator_events_dropped" not in text
            assert "bunq_shards_up 1.0" in text
            wait_until(lambda: "bunq_aggregator_up 1.0" in c.get("/prometheus").text)
            assert "bunq_aggregator_events_dropped_total 0.0" in c.get("/prometheus").text
    finally:
        server.stop()
