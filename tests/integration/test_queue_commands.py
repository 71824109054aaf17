"""bunqueue's queue inspection, upkeep and dashboard commands against `bunq serve`, over WebSocket and TCP:
`GetQueueLimits`, `GetDlqStats`, `RemoveDlqJob`, `TrimEvents`, the deduplication-key commands and
`DashboardOverview` / `DashboardQueues` / `DashboardQueue`, in the reference's reply shapes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.processes import BunqServer
from tests.support.tcp import RawTcp

pytestmark = pytest.mark.integration

NO_REASONS = dict.fromkeys(
    ("explicit_fail", "max_attempts_exceeded", "timeout", "stalled", "ttl_expired", "worker_lost", "unknown"), 0
)


class Ws:
    """Commands on one WebSocket, each answered by its reqId (events in between are passed over)."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.ids = count()

    def __call__(self, cmd: str, **fields: Any) -> dict[str, Any]:
        req_id = f"r{next(self.ids)}"
        self.conn.send(json.dumps({"cmd": cmd, "reqId": req_id, **fields}))
        while True:
            reply: dict[str, Any] = json.loads(self.conn.recv(timeout=15))
            if reply.get("reqId") == req_id:
                del reply["reqId"]
                return reply


@contextmanager
def websocket(server: BunqServer) -> Iterator[Ws]:
    with connect(f"ws://127.0.0.1:{server.port}/ws") as conn:
        yield Ws(conn)


@pytest.fixture
def ws(server: BunqServer) -> Iterator[Ws]:
    with websocket(server) as client:
        yield client


def ok(reply: dict[str, Any]) -> Any:
    assert reply["ok"] is True, reply
    return reply["data"]


def dead_letter(ws: Ws, queue: str, *, unrecoverable: bool = False) -> str:
    job_id: str = ws("PUSH", queue=queue, data={"n": 1}, maxAttempts=1)["id"]
    assert ws("PULL", queue=queue)["job"]["id"] == job_id
    assert ws("FAIL", id=job_id, error="boom", unrecoverable=unrecoverable)["ok"] is True
    return job_id


def test_get_queue_limits(ws: Ws) -> None:
    no_limits = {"rateLimit": None, "rateLimitTtl": -2, "concurrencyLimit": None, "maxed": False}
    assert ok(ws("GetQueueLimits", queue="lim")) == {"limits": no_limits}
    assert ws("RateLimit", queue="lim", limit=2)["ok"] and ws("SetConcurrency", queue="lim", limit=1)["ok"]
    for n in range(3):
        ws("PUSH", queue="lim", data={"n": n})
    limits = ok(ws("GetQueueLimits", queue="lim"))["limits"]
    assert limits == {
        "rateLimit": {"max": 2, "duration": 1000},
        "rateLimitTtl": 0,
        "concurrencyLimit": 1,
        "maxed": False,
    }
    first = ws("PULL", queue="lim")["job"]["id"]
    assert ok(ws("GetQueueLimits", queue="lim"))["limits"]["maxed"] is True  # one active of one allowed
    ws("ACK", id=first)
    ws("PULL", queue="lim")
    limits = ok(ws("GetQueueLimits", queue="lim"))["limits"]
    assert 0 < limits["rateLimitTtl"] <= 1000  # two pulls within the second: the window is full
    assert ok(ws("GetQueueLimits", queue="lim", maxJobs=5))["limits"]["rateLimitTtl"] == 0
    assert ws("GetQueueLimits") == {"ok": False, "error": "Queue name is required"}
    assert ws("GetQueueLimits", queue="lim", maxJobs="x") == {"ok": False, "error": "maxJobs must be a number"}
    assert ws("GetQueueLimits", queue="bad queue!")["error"] == "Queue name contains invalid characters"


def test_get_dlq_stats_and_remove_dlq_job_survive_a_restart(server: BunqServer) -> None:
    with websocket(server) as ws:
        empty = ok(ws("GetDlqStats", queue="dead"))["stats"]
        assert empty == {
            "total": 0,
            "byReason": NO_REASONS,
            "byQueue": {"dead": 0},
            "pendingRetry": 0,
            "expired": 0,
            "oldestEntry": None,
            "newestEntry": None,
        }
        before = int(time.time() * 1000)
        spent = dead_letter(ws, "dead")
        given_up = dead_letter(ws, "dead", unrecoverable=True)
        stats = ok(ws("GetDlqStats", queue="dead"))["stats"]
        assert stats["byReason"] == {**NO_REASONS, "max_attempts_exceeded": 1, "explicit_fail": 1}
        assert (stats["total"], stats["byQueue"], stats["pendingRetry"], stats["expired"]) == (2, {"dead": 2}, 0, 0)
        assert before <= stats["oldestEntry"] <= stats["newestEntry"] <= int(time.time() * 1000)

        assert ok(ws("RemoveDlqJob", queue="dead", jobId=spent)) == {"removed": True}
        assert ok(ws("RemoveDlqJob", queue="dead", jobId=spent)) == {"removed": False}
        assert ok(ws("RemoveDlqJob", queue="elsewhere", jobId=given_up)) == {"removed": False}
        assert ws("RemoveDlqJob", queue="dead") == {"ok": False, "error": "jobId is required"}
        assert ws("RemoveDlqJob", jobId=given_up) == {"ok": False, "error": "Queue name is required"}
        assert ws("GetDlqStats") == {"ok": False, "error": "Queue name is required"}

    server.stop()
    server.start()
    with websocket(server) as ws:
        assert ws("GetJob", id=spent) == {"ok": False, "error": "Job not found"}
        assert ok(ws("GetDlqStats", queue="dead"))["stats"]["total"] == 1
        assert [job["id"] for job in ws("Dlq", queue="dead")["jobs"]] == [given_up]


def test_trim_events_has_no_event_log_to_trim(ws: Ws) -> None:
    ws("PUSH", queue="trim", data={})
    assert ok(ws("TrimEvents", queue="trim", maxLength=0)) == {"removed": 0}
    assert ws("TrimEvents", queue="trim") == {"ok": False, "error": "maxLength is required"}
    assert ws("TrimEvents", queue="trim", maxLength=-1) == {"ok": False, "error": "maxLength must be at least 0"}
    assert ws("TrimEvents", queue="trim", maxLength=1.5) == {"ok": False, "error": "maxLength must be an integer"}
    assert ws("TrimEvents", maxLength=1) == {"ok": False, "error": "Queue name is required"}
    assert ws("GetJobCounts", queue="trim")["counts"]["waiting"] == 1


def test_deduplication_keys_are_freed_for_good(server: BunqServer) -> None:
    with websocket(server) as ws:
        held = ws("PUSH", queue="dedup", data={"n": 1}, uniqueKey="k")["id"]
        assert ws("PUSH", queue="dedup", data={"n": 2}, uniqueKey="k")["id"] == held  # deduplicated
        assert ok(ws("GetDeduplicationJobId", queue="dedup", deduplicationId="k")) == {"jobId": held}
        assert ok(ws("GetDeduplicationJobId", queue="dedup", deduplicationId="nobody")) == {"jobId": None}
        assert ok(ws("RemoveDeduplicationKey", queue="dedup", deduplicationId="k")) == {"count": 1}
        assert ok(ws("RemoveDeduplicationKey", queue="dedup", deduplicationId="k")) == {"count": 0}
        assert ok(ws("GetDeduplicationJobId", queue="dedup", deduplicationId="k")) == {"jobId": None}

        custom = ws("PUSH", queue="dedup", data={"n": 3}, uniqueKey="c", jobId="dedup-custom")["id"]
        assert ok(ws("RemoveJobDeduplicationKey", id=custom)) == {"removed": True}  # a client's id: every shard asked
        assert ok(ws("RemoveJobDeduplicationKey", id=custom)) == {"removed": False}
        assert ok(ws("RemoveJobDeduplicationKey", id="no-such-job")) == {"removed": False}

        assert ws("GetDeduplicationJobId", deduplicationId="k") == {"ok": False, "error": "Queue name is required"}
        assert ws("RemoveDeduplicationKey", queue="dedup") == {"ok": False, "error": "deduplicationId is required"}
        assert ws("RemoveJobDeduplicationKey") == {"ok": False, "error": "id is required"}

    server.stop()
    server.start()
    with websocket(server) as ws:
        assert ok(ws("GetDeduplicationJobId", queue="dedup", deduplicationId="k")) == {"jobId": None}
        fresh = ws("PUSH", queue="dedup", data={"n": 4}, uniqueKey="k")["id"]
        assert fresh != held  # accepted: the key stayed free across the restart
        assert ws("PUSH", queue="dedup", data={"n": 5}, uniqueKey="c")["id"] != custom
        assert ws("GetJobCounts", queue="dedup")["counts"]["waiting"] == 4  # the jobs that held the keys stay


def test_dashboard_overview(ws: Ws) -> None:
    ws("PUSH", queue="dash", data={})
    assert ws("RegisterWorker", name="w", queues=["dash"])["ok"]
    assert ws("Cron", name="dash-cron", queue="dash", schedule="0 0 * * *", data={})["ok"]
    data = ok(ws("DashboardOverview"))
    assert set(data) == {
        "stats", "throughput", "latency", "memory", "collections", "workers", "crons", "storage", "timestamp"
    }  # fmt: skip
    stats = data["stats"]
    assert (stats["waiting"], stats["totalPushed"], stats["dlq"]) == (1, 1, 0)
    assert set(stats) == {
        "waiting", "active", "delayed", "completed", "dlq", "totalPushed", "totalPulled", "totalCompleted",
        "totalFailed", "uptime",
    }  # fmt: skip
    assert 0 < stats["uptime"] < 600_000  # ms, as the reference counts it
    assert set(data["throughput"]) == {"pushPerSec", "pullPerSec", "completePerSec", "failPerSec"}
    assert data["latency"]["percentiles"]["push"] == {"p50": 0, "p95": 0, "p99": 0}
    assert set(data["memory"]) == {"heapUsed", "heapTotal", "rss"} and data["memory"]["rss"] > 0
    worker = data["workers"]["list"][0]
    assert (data["workers"]["total"], data["workers"]["active"], worker["name"], worker["queues"]) == (
        1,
        1,
        "w",
        ["dash"],
    )
    assert set(worker) == {"id", "name", "queues", "lastSeen", "activeJobs", "processedJobs", "failedJobs"}
    assert data["crons"] == [
        {
            "name": "dash-cron",
            "queue": "dash",
            "schedule": "0 0 * * *",
            "repeatEvery": None,
            "nextRun": data["crons"][0]["nextRun"],
            "executions": 0,
        }
    ]
    assert data["storage"] == {"diskFull": False, "error": None, "since": None}
    assert abs(data["timestamp"] - time.time() * 1000) < 60_000

    deadline = time.monotonic() + 15  # the aggregator's rates move once two 5 s snapshots saw pushes between them
    while ok(ws("DashboardOverview"))["throughput"]["pushPerSec"] == 0:
        assert time.monotonic() < deadline, "pushPerSec stayed 0"
        ws("PUSH", queue="dash", data={})
        time.sleep(0.2)


def test_dashboard_queues(ws: Ws) -> None:
    ws("PUSH", queue="dq-b", data={}, priority=2)
    ws("PUSH", queue="dq-b", data={}, delay=600_000)
    ws("PUSH", queue="dq-a", data={})
    ws("Pause", queue="dq-a")
    data = ok(ws("DashboardQueues"))
    assert data["queues"] == [
        {"name": "dq-a", "waiting": 1, "prioritized": 0, "delayed": 0, "active": 0, "dlq": 0, "paused": True},
        {"name": "dq-b", "waiting": 1, "prioritized": 1, "delayed": 1, "active": 0, "dlq": 0, "paused": False},
    ]
    assert abs(data["timestamp"] - time.time() * 1000) < 60_000


def test_dashboard_queue(ws: Ws) -> None:
    dead = dead_letter(ws, "one")
    ids = [ws("PUSH", queue="one", data={"n": n}, priority=3 if n == 0 else 0)["id"] for n in range(3)]
    delayed = ws("PUSH", queue="one", data={"n": 3}, delay=600_000)["id"]
    active = ws("PULL", queue="one")["job"]
    assert active["id"] == ids[0]
    ws("Progress", id=active["id"], progress=40)

    data = ok(ws("DashboardQueue", queue="one", includeJobs=True, jobsLimit=1))
    assert data["counts"] == {
        "waiting": 2, "prioritized": 0, "delayed": 1, "active": 1, "completed": 0, "failed": 1,
        "waiting-children": 0, "totalCompleted": 0, "totalFailed": 1, "paused": 0,
    }  # fmt: skip
    assert (data["name"], data["paused"], data["priorityCounts"]) == ("one", False, {"0": 3})
    assert [(e["id"], e["data"], e["attempts"]) for e in data["dlqPreview"]] == [(dead, {"n": 1}, 1)]
    jobs = data["jobs"]
    assert [j["id"] for j in jobs["waiting"]] == [ids[1]]  # jobsLimit 1
    assert jobs["active"] == [
        {
            "id": ids[0],
            "priority": 3,
            "createdAt": active["createdAt"],
            "runAt": active["runAt"],
            "attempts": 0,
            "progress": 40,
        }
    ]
    assert [j["id"] for j in jobs["delayed"]] == [delayed] and jobs["paused"] == []

    ws("Pause", queue="one")
    data = ok(ws("DashboardQueue", queue="one", includeJobs=True))
    assert (data["counts"]["waiting"], data["counts"]["prioritized"], data["counts"]["paused"]) == (0, 0, 2)
    assert data["jobs"]["waiting"] == [] and [j["id"] for j in data["jobs"]["paused"]] == ids[1:]
    assert "jobs" not in ok(ws("DashboardQueue", queue="one"))
    assert ws("DashboardQueue") == {"ok": False, "error": "Queue name is required"}
    assert ws("DashboardQueue", queue="one", includeJobs="yes") == {
        "ok": False,
        "error": "includeJobs must be a boolean",
    }
    assert ws("DashboardQueue", queue="one", jobsLimit=0) == {"ok": False, "error": "jobsLimit must be at least 1"}


def _without_clocks(reply: dict[str, Any]) -> dict[str, Any]:
    data = dict(reply.get("data") or {})
    data.pop("timestamp", None)
    return {**reply, "data": data}


def test_tcp_answers_every_command_as_the_websocket_does(server: BunqServer, ws: Ws) -> None:
    dead = dead_letter(ws, "tcp")
    ws("PUSH", queue="tcp", data={}, uniqueKey="u")
    ws("PUSH", queue="tcp-free", data={}, uniqueKey="v")
    held = ws("PUSH", queue="tcp-free", data={}, uniqueKey="w")["id"]
    reads = [
        {"cmd": "GetQueueLimits", "queue": "tcp"},
        {"cmd": "GetDlqStats", "queue": "tcp"},
        {"cmd": "TrimEvents", "queue": "tcp", "maxLength": 10},
        {"cmd": "GetDeduplicationJobId", "queue": "tcp", "deduplicationId": "u"},
        {"cmd": "DashboardQueues"},
        {"cmd": "DashboardQueue", "queue": "tcp", "includeJobs": True},
    ]
    with RawTcp(server.tcp_port) as tcp:
        for message in reads:
            by_tcp = tcp.call(message)
            by_ws = ws(message["cmd"], **{k: v for k, v in message.items() if k != "cmd"})
            del by_tcp["reqId"]
            assert _without_clocks(by_tcp) == _without_clocks(by_ws), message["cmd"]
        overview = tcp.call({"cmd": "DashboardOverview"})
        assert overview["ok"] is True and overview["data"]["stats"]["dlq"] == 1
        assert tcp.call({"cmd": "RemoveDlqJob", "queue": "tcp", "jobId": dead})["data"] == {"removed": True}
        assert tcp.call({"cmd": "RemoveDeduplicationKey", "queue": "tcp-free", "deduplicationId": "v"})["data"] == {
            "count": 1
        }
        assert tcp.call({"cmd": "RemoveJobDeduplicationKey", "id": held})["data"] == {"removed": True}
        assert tcp.call({"cmd": "GetDlqStats"})["error"] == "Queue name is required"
        assert tcp.call({"cmd": "RemoveJobDeduplicationKey"})["error"] == "id is required"
    assert ok(ws("GetDlqStats", queue="tcp"))["stats"]["total"] == 0
    assert ok(ws("GetDeduplicationJobId", queue="tcp-free", deduplicationId="w")) == {"jobId": None}
