"""bunqueue's dashboard commands (`DashboardOverview`, `DashboardQueues`, `DashboardQueue`): one call each for
what a dashboard page shows, composed from what the shards and the aggregator already answer, in the
reference's `{ok, data}` shapes. `bunq.ws_commands` runs them for WebSocket and TCP.

What bunq does not measure reads as the nearest true value: command latencies (it times no push, pull or
ack) as 0, a queue's lifetime `totalCompleted` / `totalFailed` (it counts them per shard, not per queue) as
its completed jobs and DLQ entries now.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from bunq import protocol as p
from bunq import validation as v
from bunq.clock import wall_ms
from bunq.http import Call, Result, encode_data
from bunq.routes.monitoring import STARTED, aggregator_stats, memory_mb, storage_state
from bunq.stats import Merged, gather

RATES = ("pushPerSec", "pullPerSec", "completePerSec", "failPerSec")
UNMEASURED_LATENCY = {"p50": 0, "p95": 0, "p99": 0}
DLQ_PREVIEW = 10
JOBS_LIMIT, MAX_JOBS_LIMIT = 10, 50


# ---- overview ---------------------------------------------------------------------------------------


def _stats(merged: Merged) -> dict[str, Any]:
    counts = merged.counts()
    totals = merged.totals
    return {
        "waiting": counts["waiting"],
        "active": counts["active"],
        "delayed": counts["delayed"],
        "completed": counts["completed"],
        "dlq": counts["failed"],
        "totalPushed": totals.get("pushed", 0),
        "totalPulled": totals.get("pulled", 0),
        "totalCompleted": totals.get("completed", 0),
        "totalFailed": totals.get("failed", 0),
        "uptime": wall_ms() - int(STARTED * 1000),
    }


def _workers(reply: p.Workers) -> dict[str, Any]:
    listed = [
        {
            "id": w.id,
            "name": w.name,
            "queues": w.queues,
            "lastSeen": w.last_seen,
            "activeJobs": w.active_jobs,
            "processedJobs": w.processed_jobs,
            "failedJobs": w.failed_jobs,
        }
        for w in reply.workers
    ]
    return {"total": len(listed), "active": len(listed), "list": listed}  # the registry forgets silent ones


def _crons(reply: p.Crons) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "queue": c.queue,
            "schedule": c.schedule,
            "repeatEvery": c.repeat_every,
            "nextRun": c.next_run,
            "executions": c.executions,
        }
        for c in reply.crons
    ]


async def dashboard_overview(call: Call) -> Result:
    client = call.client
    merged, workers, crons, aggregator = await asyncio.gather(
        gather(client),
        client.call_aggregator(p.ListWorkers(), p.Workers),
        client.call_aggregator(p.ListCrons(), p.Crons),
        aggregator_stats(client),
    )
    rates = aggregator.rates if aggregator is not None else {}
    memory = memory_mb(merged)
    return encode_data(
        {
            "stats": _stats(merged),
            "throughput": {key: rates.get(key, 0.0) for key in RATES},
            "latency": {
                "averages": {"pushMs": 0, "pullMs": 0, "ackMs": 0},
                "percentiles": {"push": UNMEASURED_LATENCY, "pull": UNMEASURED_LATENCY, "ack": UNMEASURED_LATENCY},
            },
            "memory": {k: memory[k] for k in ("heapUsed", "heapTotal", "rss")},
            "collections": merged.collections,
            "workers": _workers(workers),
            "crons": _crons(crons),
            "storage": storage_state(merged),
            "timestamp": wall_ms(),
        }
    )


# ---- queues -----------------------------------------------------------------------------------------


async def _configs(call: Call, names: list[str]) -> list[p.QueueConfig]:
    return await asyncio.gather(*(call.client.call_queue(q, p.GetQueueConfig(q), p.QueueConfig) for q in names))


def _queue_row(name: str, c: p.QueueCounts, config: p.QueueConfig) -> dict[str, Any]:
    return {
        "name": name,
        "waiting": c.waiting,
        "prioritized": c.prioritized,
        "delayed": c.delayed,
        "active": c.active,
        "dlq": c.failed,
        "paused": config.paused,
    }


async def dashboard_queues(call: Call) -> Result:
    merged = await gather(call.client)
    names = sorted(merged.queues)
    configs = await _configs(call, names)
    queues = [_queue_row(name, merged.queues[name], config) for name, config in zip(names, configs, strict=True)]
    return encode_data({"queues": queues, "timestamp": wall_ms()})


# ---- one queue --------------------------------------------------------------------------------------


class _Summary(msgspec.Struct):
    """What a dashboard's job list shows of a job."""

    id: str
    priority: int = 0
    createdAt: int = 0
    runAt: int = 0
    attempts: int = 0
    progress: int | float = 0


class _DlqPreview(msgspec.Struct):
    id: str
    data: msgspec.Raw = msgspec.Raw(b"null")
    attempts: int = 0
    createdAt: int = 0


_summaries = msgspec.json.Decoder(_Summary)
_previews = msgspec.json.Decoder(_DlqPreview)


def _counts(counts: p.QueueCounts, paused: bool) -> dict[str, int]:
    """A queue's counts as the reference's dashboard reads them: while it is paused, its ready jobs count as
    `paused` and not as `waiting` or `prioritized`."""
    return {
        "waiting": 0 if paused else counts.waiting,
        "prioritized": 0 if paused else counts.prioritized,
        "delayed": counts.delayed,
        "active": counts.active,
        "completed": counts.completed,
        "failed": counts.failed,
        "waiting-children": counts.waiting_children,
        "totalCompleted": counts.completed,
        "totalFailed": counts.failed,
        "paused": counts.waiting if paused else 0,
    }


async def _jobs(call: Call, queue: str, state: p.State, limit: int) -> list[_Summary]:
    jobs = await call.client.call_queue(queue, p.ListJobs(queue, state, limit, 0), p.Jobs)
    return [_summaries.decode(job) for job in jobs.jobs]


async def _job_lists(call: Call, queue: str, paused: bool, limit: int) -> dict[str, list[_Summary]]:
    waiting, active, delayed = await asyncio.gather(
        *(_jobs(call, queue, state, limit) for state in (p.State.WAITING, p.State.ACTIVE, p.State.DELAYED))
    )
    return {
        "waiting": [] if paused else waiting,
        "active": active,
        "delayed": delayed,
        "paused": waiting if paused else [],
    }


async def dashboard_queue(call: Call) -> Result:
    queue = v.queue_name(call.params["queue"])
    body = v.decode_object(call.body)
    include = body.get("includeJobs") is not None and v.flag("includeJobs", body["includeJobs"])
    limit = v.number("jobsLimit", body.get("jobsLimit"), 1, 1_000_000, integer=True, default=JOBS_LIMIT) or JOBS_LIMIT
    counts, config, priorities, dlq = await asyncio.gather(
        call.client.call_queue(queue, p.GetCounts(queue), p.Counts),
        call.client.call_queue(queue, p.GetQueueConfig(queue), p.QueueConfig),
        call.client.call_queue(queue, p.GetPriorityCounts(queue), p.PriorityCounts),
        call.client.call_queue(queue, p.GetDlq(queue, DLQ_PREVIEW, 0), p.DlqEntries),
    )
    view: dict[str, Any] = {
        "name": queue,
        "counts": _counts(counts.counts, config.paused),
        "paused": config.paused,
        "priorityCounts": priorities.counts,
        "dlqPreview": [_previews.decode(entry) for entry in dlq.entries],
        "timestamp": wall_ms(),
    }
    if include:
        view["jobs"] = await _job_lists(call, queue, config.paused, min(limit, MAX_JOBS_LIMIT))
    return encode_data(view)
