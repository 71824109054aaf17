"""Job routes: push, pull, ack, fail, lookups and cancel (the spec's "Jobs" group)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bunq import protocol as p
from bunq import validation as v
from bunq.client import ShardClient, raise_error
from bunq.errors import BadRequest, NotFound
from bunq.http import OK, raw_reply, read_body, reply

NOT_ACTIVE = "Job not found or not active"


def _client(request: Request) -> ShardClient:
    client: ShardClient = request.app.state.client
    return client


async def add_job(request: Request) -> Response:
    queue = v.queue_name(request.path_params["queue"])
    job = v.push_body(await read_body(request))
    ids = await _client(request).call_queue(queue, p.AddJobs(queue, [job]))
    assert isinstance(ids, p.Ids)
    return reply({"ok": True, "id": ids.ids[0]})


async def add_jobs_bulk(request: Request) -> Response:
    queue = v.queue_name(request.path_params["queue"])
    jobs = v.bulk_body(await read_body(request))
    if not jobs:
        return reply({"ok": True, "ids": []})
    ids = await _client(request).call_queue(queue, p.AddJobs(queue, jobs))
    assert isinstance(ids, p.Ids)
    return reply({"ok": True, "ids": ids.ids})


def _query_number(request: Request, name: str, lo: int, hi: int, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value: Any = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a finite number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{name} must be a finite number")
    return v.number(name, value, lo, hi, default=default)


async def _pull(request: Request, queue: str, count: int, timeout: int, owner: Any, lock_ttl: Any) -> p.Jobs:
    command = p.PullJobs(
        queue,
        count=count,
        timeout_ms=timeout,
        owner=v.string("owner", owner),
        lock_ttl=v.number("lockTtl", lock_ttl, 1, v.DAY_MS),
    )
    jobs = await _client(request).call_queue(queue, command, extra_wait_ms=timeout)
    assert isinstance(jobs, p.Jobs)
    return jobs


async def pull_job(request: Request) -> Response:
    queue = v.queue_name(request.path_params["queue"])
    timeout = _query_number(request, "timeout", 0, v.MAX_LONG_POLL_MS, 0) or 0
    lock_ttl = _query_number(request, "lockTtl", 1, v.DAY_MS, None)
    jobs = await _pull(request, queue, 1, timeout, request.query_params.get("owner"), lock_ttl)
    if not jobs.jobs:
        return raw_reply(b'{"ok":true,"job":null}')
    token = jobs.tokens[0] if jobs.tokens else None
    tail = b"}" if token is None else b',"token":"' + token.encode() + b'"}'
    return raw_reply(b'{"ok":true,"job":' + jobs.jobs[0] + tail)


async def pull_jobs(request: Request) -> Response:
    queue = v.queue_name(request.path_params["queue"])
    body = v.decode_object(await read_body(request))
    if body.get("count") is None:
        raise BadRequest("count is required")
    count = v.number("count", body["count"], 1, 1000, integer=True) or 1
    timeout = v.number("timeout", body.get("timeout"), 0, v.MAX_LONG_POLL_MS, default=0) or 0
    jobs = await _pull(request, queue, count, timeout, body.get("owner"), body.get("lockTtl"))
    out = b'{"ok":true,"jobs":[' + b",".join(jobs.jobs) + b"]"
    if body.get("owner") is not None:
        out += b',"tokens":' + v.encode_json(jobs.tokens)
    return raw_reply(out + b"}")


def _token(body: dict[str, Any]) -> str | None:
    return v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)


async def ack_job(request: Request) -> Response:
    job_id = request.path_params["id"]
    body = v.decode_object(await read_body(request))
    result = v.encode_json(body["result"]) if "result" in body else None
    command = p.AckJobs([job_id], [result], [_token(body)])
    outcome = await _client(request).call_for_id(job_id, command, _acked)
    outcome = raise_error(outcome)
    assert isinstance(outcome, p.AckOutcome)
    if outcome.failed:
        raise BadRequest(outcome.failed.get(job_id, NOT_ACTIVE))
    return raw_reply(OK)


def _acked(reply: p.Reply) -> bool:
    return isinstance(reply, p.AckOutcome) and reply.acked > 0


async def ack_jobs_batch(request: Request) -> Response:
    body = v.decode_object(await read_body(request))
    ids = v.strings("ids", body.get("ids"))
    if body.get("ids") is None:
        raise BadRequest("ids is required")
    results = body.get("results") or []
    tokens = body.get("tokens") or []
    if not isinstance(results, list) or not isinstance(tokens, list):
        raise BadRequest("results and tokens must be arrays")
    encoded = [v.encode_json(results[i]) if i < len(results) else None for i in range(len(ids))]
    toks = [v.string("tokens[]", tokens[i]) if i < len(tokens) else None for i in range(len(ids))]
    client = _client(request)
    groups: dict[int, list[int]] = {}
    for i, job_id in enumerate(ids):
        shard = client.shard_for_id(job_id)
        for s in range(client.shards) if shard is None else (shard,):
            groups.setdefault(s, []).append(i)
    acked: set[str] = set()
    failed: dict[str, str] = {}
    for shard, replies in zip(groups, await _ack_groups(client, groups, ids, encoded, toks), strict=True):
        outcome = raise_error(replies)
        assert isinstance(outcome, p.AckOutcome)
        for i in groups[shard]:
            if ids[i] in outcome.failed:
                failed.setdefault(ids[i], outcome.failed[ids[i]])
            else:
                acked.add(ids[i])
    failures = {k: m for k, m in failed.items() if k not in acked}
    if failures:
        first = next(iter(failures.values()))
        return reply({"ok": False, "error": first, "count": len(acked), "failed": failures}, 400)
    return reply({"ok": True, "count": len(acked)})


async def _ack_groups(
    client: ShardClient,
    groups: dict[int, list[int]],
    ids: list[str],
    results: list[bytes | None],
    tokens: list[str | None],
) -> list[p.Reply]:
    calls = [
        client.call_raw(shard, p.AckJobs([ids[i] for i in idx], [results[i] for i in idx], [tokens[i] for i in idx]))
        for shard, idx in groups.items()
    ]
    return list(await asyncio.gather(*calls))


async def fail_job(request: Request) -> Response:
    job_id = request.path_params["id"]
    body = v.decode_object(await read_body(request))
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        error = v.encode_json(error).decode()
    command = p.FailJob(job_id, error, _token(body))
    raise_error(await _client(request).call_for_id(job_id, command, _done))
    return raw_reply(OK)


def _done(reply: p.Reply) -> bool:
    return not isinstance(reply, p.Error)


def _found(reply: p.Reply) -> bool:
    return (
        not isinstance(reply, p.Error)
        and not (isinstance(reply, p.JobState) and reply.state == "unknown")
        and not (isinstance(reply, p.JobResult) and not reply.found)
    )


async def get_job(request: Request) -> Response:
    job_id = request.path_params["id"]
    doc = raise_error(await _client(request).call_for_id(job_id, p.GetJob(job_id), _found))
    assert isinstance(doc, p.JobDoc)
    return raw_reply(b'{"ok":true,"job":' + doc.job + b"}")


async def get_job_by_custom_id(request: Request) -> Response:
    custom_id = request.path_params["custom_id"]
    for doc in await _client(request).call_all(p.GetJob(custom_id)):
        if isinstance(doc, p.JobDoc):
            return raw_reply(b'{"ok":true,"job":' + doc.job + b"}")
    raise NotFound("Job not found")


async def get_job_state(request: Request) -> Response:
    job_id = request.path_params["id"]
    state = raise_error(await _client(request).call_for_id(job_id, p.GetJobState(job_id), _found))
    assert isinstance(state, p.JobState)
    return reply({"ok": True, "id": job_id, "state": state.state})


async def get_job_result(request: Request) -> Response:
    job_id = request.path_params["id"]
    result = raise_error(await _client(request).call_for_id(job_id, p.GetJobResult(job_id), _found))
    assert isinstance(result, p.JobResult)
    if not result.found:
        raise NotFound("Job not found")
    prefix = b'{"ok":true,"id":' + v.encode_json(job_id) + b',"result":'
    return raw_reply(prefix + (result.result or b"null") + b"}")


async def cancel_job(request: Request) -> Response:
    job_id = request.path_params["id"]
    raise_error(await _client(request).call_for_id(job_id, p.CancelJob(job_id), _done))
    return raw_reply(OK)


routes = [
    Route("/queues/{queue}/jobs", add_job, methods=["POST"]),
    Route("/queues/{queue}/jobs", pull_job, methods=["GET"]),
    Route("/queues/{queue}/jobs/bulk", add_jobs_bulk, methods=["POST"]),
    Route("/queues/{queue}/jobs/pull-batch", pull_jobs, methods=["POST"]),
    Route("/jobs/ack-batch", ack_jobs_batch, methods=["POST"]),
    Route("/jobs/custom/{custom_id}", get_job_by_custom_id, methods=["GET"]),
    Route("/jobs/{id}", get_job, methods=["GET"]),
    Route("/jobs/{id}", cancel_job, methods=["DELETE"]),
    Route("/jobs/{id}/ack", ack_job, methods=["POST"]),
    Route("/jobs/{id}/fail", fail_job, methods=["POST"]),
    Route("/jobs/{id}/state", get_job_state, methods=["GET"]),
    Route("/jobs/{id}/result", get_job_result, methods=["GET"]),
]
