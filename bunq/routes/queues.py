"""Queue routes: counts and the dead-letter queue listing."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bunq import protocol as p
from bunq import validation as v
from bunq.client import ShardClient
from bunq.errors import BadRequest
from bunq.http import raw_reply, reply


def _client(request: Request) -> ShardClient:
    client: ShardClient = request.app.state.client
    return client


async def get_counts(request: Request) -> Response:
    queue = v.queue_name(request.path_params["queue"])
    counts = await _client(request).call_queue(queue, p.GetCounts(queue))
    assert isinstance(counts, p.Counts)
    return reply({"ok": True, "counts": counts.counts})


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit():
        raise BadRequest(f"{name} must be an integer")
    return v.number(name, int(raw), lo, hi, integer=True, default=default) or 0


async def get_dlq(request: Request) -> Response:
    queue = v.queue_name(request.path_params["queue"])
    count = _query_int(request, "count", 100, 1, 10_000)
    count = _query_int(request, "limit", count, 1, 10_000)
    offset = _query_int(request, "offset", 0, 0, 1_000_000_000)
    dlq = await _client(request).call_queue(queue, p.GetDlq(queue, count, offset))
    assert isinstance(dlq, p.DlqEntries)
    entries = b"[" + b",".join(dlq.entries) + b"]"
    body = b'{"ok":true,"jobs":' + entries + b',"entries":' + entries + b',"total":' + str(dlq.total).encode() + b"}"
    return raw_reply(body)


routes = [
    Route("/queues/{queue}/counts", get_counts, methods=["GET"]),
    Route("/queues/{queue}/dlq", get_dlq, methods=["GET"]),
]
