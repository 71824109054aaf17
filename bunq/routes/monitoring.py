"""Monitoring routes: health and probes, ping, stats, metrics, Prometheus, storage, GC and heap stats.

Figures come from every shard (fanned out in parallel and merged), and connection counts from every front
(through the aggregator), so any front answers the same.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bunq import __version__
from bunq import apidoc as d
from bunq import protocol as p
from bunq.client import Shards
from bunq.clock import wall_ms
from bunq.connections import ConnectionReport
from bunq.errors import DISK_FULL, BunqError
from bunq.http import Call, Doc, Operation, Result, encode, encode_data
from bunq.procinfo import rss_bytes
from bunq.stats import Merged, disk_full, gather

MB = 1024 * 1024
STARTED = time.time()
AGGREGATOR_WAIT_S = 1.0  # what a scrape waits for the aggregator's figures before going on without them
PROBE_WAIT_S = 2.0  # what /health, /ready and a scrape wait for a shard before counting it as not answering


def _client(request: Request) -> Shards:
    client: Shards = request.app.state.client
    return client


def memory_mb(merged: Merged) -> dict[str, int]:
    rss = (merged.rss_bytes + rss_bytes()) // MB
    return {"heapUsed": rss, "heapTotal": rss, "rss": rss, "external": 0, "arrayBuffers": 0}


def _uptime() -> int:
    return int(time.time() - STARTED)


async def health(request: Request) -> Response:
    report: ConnectionReport = request.app.state.connection_report
    merged, connections = await asyncio.gather(gather(_client(request), PROBE_WAIT_S), report.totals())
    counts = merged.counts()
    degraded = disk_full(merged) or merged.shards_up < _client(request).shards
    body = {
        "ok": True,
        "status": "degraded" if degraded else "healthy",
        "uptime": _uptime(),
        "version": __version__,
        "queues": {**{k: counts[k] for k in ("waiting", "active", "delayed", "completed")}, "dlq": counts["failed"]},
        "connections": {k: connections[k] for k in ("tcp", "ws", "sse")},
        "memory": {k: v for k, v in memory_mb(merged).items() if k in ("heapUsed", "heapTotal", "rss")},
    }
    return Response(encode(body), media_type="application/json")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("OK")


async def ready(request: Request) -> Response:
    client = _client(request)
    targets = range(client.shards + (1 if client.with_aggregator else 0))
    calls = [asyncio.wait_for(client.call_raw(s, p.Ping()), PROBE_WAIT_S) for s in targets]
    replies = await asyncio.gather(*calls, return_exceptions=True)
    is_ready = all(isinstance(r, p.Pong) for r in replies)
    return Response(
        encode({"ok": is_ready, "ready": is_ready}), 200 if is_ready else 503, media_type="application/json"
    )


def pong() -> dict[str, Any]:
    """`/ping`'s answer, and the TCP protocol's `Ping`."""
    return {"ok": True, "data": {"pong": True, "time": wall_ms()}}


async def ping(call: Call) -> Result:
    return encode(pong())


async def stats(call: Call) -> Result:
    merged = await gather(call.client)
    counts = merged.counts()
    figures = {
        **counts,
        "dlq": counts["failed"],
        "totalPushed": merged.totals.get("pushed", 0),
        "totalPulled": merged.totals.get("pulled", 0),
        "totalCompleted": merged.totals.get("completed", 0),
        "totalFailed": merged.totals.get("failed", 0),
        "uptime": _uptime(),
        "shards": merged.shards_up,
    }
    return encode({"ok": True, "stats": figures, "memory": memory_mb(merged), "collections": merged.collections})


async def metrics_json(call: Call) -> Result:
    totals = (await gather(call.client)).totals
    keys = {"totalPushed": "pushed", "totalPulled": "pulled", "totalCompleted": "completed", "totalFailed": "failed"}
    return encode({"ok": True, "metrics": {name: totals.get(key, 0) for name, key in keys.items()}})


# The text format's Content-Type, prometheus_client.exposition.CONTENT_TYPE_PLAIN_0_0_4 (a unit test checks),
# written out so that prometheus-client is not loaded before the first scrape
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def _prometheus_text(client: Shards) -> bytes:
    # bunq.metrics (and prometheus-client, about 1.2 MB of every front's memory) is imported at the first scrape
    from bunq import metrics

    merged, aggregator = await asyncio.gather(gather(client, PROBE_WAIT_S), aggregator_stats(client))
    return metrics.render(merged, _uptime(), rss_bytes(), aggregator)


async def aggregator_stats(client: Shards) -> p.AggregatorStats | None:
    """The aggregator's own figures, or None when it does not answer within `AGGREGATOR_WAIT_S`: a scrape
    goes on without them (`bunq_aggregator_up 0`) rather than wait out a request timeout."""
    try:
        return await asyncio.wait_for(
            client.call_aggregator(p.GetAggregatorStats(), p.AggregatorStats), AGGREGATOR_WAIT_S
        )
    except (BunqError, TimeoutError):
        return None


async def prometheus(request: Request) -> Response:
    return Response(await _prometheus_text(_client(request)), media_type=PROMETHEUS_TEXT)


async def prometheus_json(call: Call) -> Result:
    """The Prometheus text wrapped as the WebSocket `Prometheus` command answers it."""
    return encode_data({"metrics": (await _prometheus_text(call.client)).decode()})


def _storage(merged: Merged) -> dict[str, Any]:
    return {
        "ok": True,
        "diskFull": disk_full(merged),
        "storageBytes": merged.storage_bytes,
        "freeDiskBytes": max(0, merged.free_disk_bytes),
    }


async def storage(call: Call) -> Result:
    return encode(_storage(await gather(call.client)))


def storage_state(merged: Merged) -> dict[str, Any]:
    """Storage as the reference reports it (`StorageStatus`, the dashboard): bunq keeps no time of the first
    failed write, so `since` is null."""
    full = disk_full(merged)
    return {"diskFull": full, "error": DISK_FULL if full else None, "since": None}


async def storage_status(call: Call) -> Result:
    """The `StorageStatus` command: `/storage`'s body, and the reference's `data` beside it."""
    merged = await gather(call.client)
    return encode({**_storage(merged), "data": storage_state(merged)})


async def collect(call: Call) -> Result:
    """Collects garbage in this front and in every shard, and compacts the shards' structures."""
    own_before = rss_bytes()
    gc.collect()
    replies = await call.client.call_all(p.Collect())
    memory = [r for r in replies if isinstance(r, p.Memory)]
    before = (own_before + sum(m.before_rss for m in memory)) // MB
    after = (rss_bytes() + sum(m.after_rss for m in memory)) // MB
    return encode(
        {
            "ok": True,
            "before": {"heapUsed": before, "heapTotal": before, "rss": before},
            "after": {"heapUsed": after, "heapTotal": after, "rss": after},
        }
    )


def _top_types(limit: int = 20) -> list[tuple[str, int]]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects()).most_common(limit)


async def heapstats(call: Call) -> Result:
    processes: list[dict[str, Any]] = [
        {"process": f"front-{os.getpid()}", "rssMB": rss_bytes() // MB, "topTypes": _top_types(), "collections": {}}
    ]
    merged: dict[str, int] = {}
    for reply in await call.client.call_all(p.GetHeapStats()):
        if isinstance(reply, p.HeapStats):
            processes.append(
                {
                    "process": reply.process,
                    "rssMB": reply.rss_bytes // MB,
                    "topTypes": reply.top_types,
                    "collections": reply.collections,
                }
            )
            for key, value in reply.collections.items():
                merged[key] = merged.get(key, 0) + value
    rss = sum(proc["rssMB"] for proc in processes)
    return encode({"ok": True, "heap": {"rssMB": rss}, "collections": merged, "processes": processes})


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/live", healthz, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/prometheus", prometheus, methods=["GET"]),
]

Op = Operation

operations = [
    Op("GET", "/ping", ping, body=False, doc=Doc("Ping", reply=d.PingReply)),
    Op("GET", "/stats", stats, p.GetStats, p.ShardStats, body=False, doc=Doc("Server figures", reply=d.StatsReply)),
    Op("GET", "/metrics", metrics_json, p.GetStats, p.ShardStats, body=False, doc=Doc("Totals", reply=d.MetricsReply)),
    Op("GET", "/storage", storage, p.GetStats, p.ShardStats, body=False, doc=Doc("Storage", reply=d.StorageReply)),
    Op("POST", "/gc", collect, p.Collect, p.Memory, doc=Doc("Collect garbage everywhere", reply=d.GcReply)),
    Op(
        "GET",
        "/heapstats",
        heapstats,
        p.GetHeapStats,
        p.HeapStats,
        body=False,
        doc=Doc("Memory by process", reply=d.HeapReply),
    ),
]
