"""bunqueue's TypeScript client (`bunqueue/client`: Queue, Worker, QueueEvents) and its CLI, unchanged, against bunq."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.realclients.conftest import BUN, Bun
from tests.support.processes import BunqServer, wait_until

pytestmark = pytest.mark.integration


def test_queue_worker_and_events_process_every_job_once(scenarios: Path, served: BunqServer) -> None:
    out = Bun(scenarios, served).run("process", "ts-process", N=200)
    assert out["pushed"] == out["unique"] == 200  # 100 added one by one, 100 in bulk
    assert out["processed"] == 200 and out["twice"] == 0
    assert out["maxActive"] == 8  # the Worker's concurrency
    assert out["completedEvents"] == 200  # QueueEvents saw every completion
    assert out["sampleState"] == "completed"
    assert out["sampleResult"] == {"doubled": 6}
    assert out["sampleProgress"] == 50
    assert out["sampleLogs"] == ["[info] working on 3"]
    assert out["counts"]["completed"] == 200 and out["counts"]["active"] == out["counts"]["waiting"] == 0
    counts = httpx.get(f"{served.url}/queues/ts-process/counts").json()["counts"]
    assert counts["completed"] == 200


def test_retries_end_in_the_dlq_and_an_unrecoverable_error_at_once(scenarios: Path, served: BunqServer) -> None:
    out = Bun(scenarios, served).run("failures", "ts-failures")
    assert out["calls"] == {"retry": 2, "fatal": 1}  # attempts: 2; the UnrecoverableError is not retried
    assert out["dlq"] == out["ids"]
    assert out["reasons"] == {"retry": "try again", "fatal": "cannot ever work"}
    dlq = httpx.get(f"{served.url}/queues/ts-failures/dlq").json()
    assert {e["reason"] for e in dlq["entries"]} == {"max_attempts_exceeded", "unrecoverable"}


def test_a_failed_job_retried_by_the_client_runs_again(scenarios: Path, served: BunqServer) -> None:
    out = Bun(scenarios, served).run("retry", "ts-retry")
    assert out["runs"] == 2 and out["result"] == {"run": 2}
    assert (out["waiting"], out["prioritized"]) == (1, 1)  # BullMQ's states, apart
    # a queue's own events reach QueueEvents too, and do not break its connection (a frame without a jobId did)
    assert out["events"] == ["completed", "paused", "resumed"]
    assert httpx.get(f"{served.url}/queues/ts-retry/dlq").json()["entries"] == []


def test_a_flow_producer_s_parent_runs_after_its_children(scenarios: Path, served: BunqServer) -> None:
    out = Bun(scenarios, served).run("flow", "ts-flow")
    assert len(out["childIds"]) == 2
    order = out["order"]
    assert order.index("parent:parent") > max(order.index("child:1"), order.index("child:2"))
    assert order.index("parent:soft") > order.index("child:-1")  # its child failed; continueParentOnFailure
    assert out["childrenValues"] == [{"doubled": 2}, {"doubled": 4}]
    parent = httpx.get(f"{served.url}/jobs/{out['parentId']}").json()["job"]
    assert parent["state"] == "completed" and parent["childrenIds"] == out["childIds"]


def test_a_killed_worker_gives_its_jobs_back(scenarios: Path, served: BunqServer) -> None:
    bun = Bun(scenarios, served)
    ids = httpx.post(f"{served.url}/queues/ts-kill/jobs/bulk", json={"jobs": [{"data": {"i": i}} for i in range(6)]})
    pushed = ids.json()["ids"]
    hanging = bun.start("hang", "ts-kill", COUNT=3)
    try:
        assert hanging.stdout is not None
        started = json.loads(hanging.stdout.readline())["started"]
        assert len(started) == 3 and set(started) <= set(pushed)
        assert httpx.get(f"{served.url}/queues/ts-kill/counts").json()["counts"]["active"] == 3
    finally:
        hanging.send_signal(signal.SIGKILL)
        hanging.communicate(timeout=10)

    def given_back() -> bool:
        return bool(httpx.get(f"{served.url}/queues/ts-kill/counts").json()["counts"]["active"] == 0)

    wait_until(given_back, 10)  # at once, not at the lock's expiry (30 s)
    done = bun.run("consume", "ts-kill", COUNT=6)["done"]
    assert sorted(done) == sorted(pushed)  # every job done, none twice
    for job_id in started:
        assert httpx.get(f"{served.url}/jobs/{job_id}/result").json()["result"] == {"by": "ts"}


def test_http_pushes_are_consumed_over_tcp_and_the_reverse(scenarios: Path, served: BunqServer) -> None:
    bun = Bun(scenarios, served)
    body = {"jobs": [{"data": {"i": i}} for i in range(50)]}
    over_http = httpx.post(f"{served.url}/queues/ts-cross/jobs/bulk", json=body).json()["ids"]
    done = bun.run("consume", "ts-cross", COUNT=50)["done"]
    assert sorted(done) == sorted(over_http)
    assert httpx.get(f"{served.url}/jobs/{over_http[0]}/result").json()["result"] == {"by": "ts"}

    over_tcp = bun.run("produce", "ts-back", N=50)["ids"]
    taken: list[str] = []
    while len(taken) < 50:
        batch = httpx.post(f"{served.url}/queues/ts-back/jobs/pull-batch", json={"count": 20}).json()["jobs"]
        assert batch, "jobs pushed over TCP are missing over HTTP"
        ids = [job["id"] for job in batch]
        acked = httpx.post(f"{served.url}/jobs/ack-batch", json={"ids": ids}).json()
        assert acked["ok"] is True
        taken += ids
    assert sorted(taken) == sorted(over_tcp)
    assert httpx.get(f"{served.url}/queues/ts-back/counts").json()["counts"]["completed"] == 50


def test_auth_with_and_without_a_token(scenarios: Path, authed: BunqServer) -> None:
    assert Bun(scenarios, authed).run("auth", "ts-auth") == {"ok": False, "error": "Not authenticated"}
    assert Bun(scenarios, authed, token="wrong").run("auth", "ts-auth")["ok"] is False
    out = Bun(scenarios, authed, token="s3cret").run("auth", "ts-auth")
    assert out["ok"] is True
    headers = {"Authorization": "Bearer s3cret"}
    counts = httpx.get(f"{authed.url}/queues/ts-auth/counts", headers=headers).json()["counts"]
    assert counts["waiting"] == 1  # only the authenticated add got in


def test_the_cli_pushes_pulls_and_acks_from_separate_connections(scenarios: Path, served: BunqServer) -> None:
    cli = scenarios.parent / "node_modules" / "bunqueue" / "dist" / "cli" / "index.js"

    def run(*args: str) -> str:
        argv = [str(BUN), str(cli), *args, "--host", "127.0.0.1", "--port", str(served.tcp_port)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    job_id = run("push", "ts-cli", '{"n": 1}').split()[-1]
    assert "waiting" in run("job", "state", job_id)
    assert job_id in run("pull", "ts-cli")  # a detached pull: the job stays active after the CLI exits
    assert "active" in run("job", "state", job_id)
    run("ack", job_id, "--result", '{"ok": 1}')
    assert "completed" in run("job", "state", job_id)
    assert httpx.get(f"{served.url}/jobs/{job_id}/result").json()["result"] == {"ok": 1}
