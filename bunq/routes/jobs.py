"""Job routes: push, pull, ack, fail, lookups and cancel (the spec's "Jobs" group).

Handlers take a `Call` and return JSON bytes; `routes` wraps them for Starlette and `bunq.fastpath`
serves the hottest of them without the router and middleware stack.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from bunq import apidoc as d
from bunq import protocol as p
from bunq import pushes
from bunq import validation as v
from bunq.client import expect, not_found, raise_error
from bunq.errors import BadRequest, NotFound
from bunq.http import OK, Call, Doc, Operation, Result, batch_result, encode
from bunq.routes import flows

NOT_ACTIVE = "Job not found or not active"


async def add_job(call: Call) -> Result:
    queue = v.queue_name(call.params["queue"])
    job = pushes.push_body(call.body, call.client.slot_for_queue(queue))
    if job.depends_on:
        await dependencies_exist(call, [job])
    if job.options is not None:
        made = await _push_with_options(call, queue, [job])
        return b'{"ok":true,"id":' + v.encode_json(made[0]) + b"}"
    ids = await call.client.call_queue(queue, p.AddJobs(queue, [job]), p.Ids)
    return b'{"ok":true,"id":' + v.encode_json(ids.ids[0]) + b"}"


async def add_jobs_bulk(call: Call) -> Result:
    queue = v.queue_name(call.params["queue"])
    jobs = pushes.bulk_body(call.body, call.client.slot_for_queue(queue))
    if not jobs:
        return b'{"ok":true,"ids":[]}'
    if any(job.depends_on or job.options for job in jobs):
        if any(job.depends_on for job in jobs):
            await dependencies_exist(call, jobs)
        if any(job.options is not None for job in jobs):
            return b'{"ok":true,"ids":' + v.encode_json(await _push_with_options(call, queue, jobs)) + b"}"
    ids = await call.client.call_queue(queue, p.AddJobs(queue, jobs), p.Ids)
    return b'{"ok":true,"ids":' + v.encode_json(ids.ids) + b"}"


async def _push_with_options(call: Call, queue: str, jobs: list[p.NewJob]) -> list[str]:
    """A push some of whose jobs carry `PushOptions`: parents checked first, the shard told to read the
    options, and the children linked to their parents once made (`bunq.routes.flows`)."""
    jobs, parents = await flows.adopting(call.client, jobs)
    return await flows.to_the_end(_push_and_link(call, queue, jobs, parents))


async def _push_and_link(call: Call, queue: str, jobs: list[p.NewJob], parents: dict[str, dict[str, Any]]) -> list[str]:
    ids = (await call.client.call_queue(queue, p.AddJobs(queue, jobs, options=True), p.Ids)).ids
    if parents:
        await flows.link_children(call.client, jobs, ids, parents, queue)
    return ids


async def dependencies_exist(call: Call, jobs: list[p.NewJob]) -> None:
    """Refuse a push whose `dependsOn` names a job no shard has (it would wait for it forever), as the
    reference does; a job of the same request (by its `jobId`), or one completed and removed whose result
    is still kept, counts as existing."""
    own = {job.job_id for job in jobs if job.job_id} | {job.id for job in jobs if job.id}
    wanted = list(dict.fromkeys(dep for job in jobs for dep in job.depends_on if dep not in own))
    replies = await asyncio.gather(*(call.client.call_for_id(dep, p.GetJobResult(dep), _exists) for dep in wanted))
    for dep, reply in zip(wanted, replies, strict=True):
        if not _exists(reply):
            raise BadRequest(f"Dependency job not found: {dep}")


def _exists(reply: p.Reply) -> bool:
    return isinstance(reply, p.JobResult) and reply.found


def _query_number(call: Call, name: str, lo: int, hi: int, default: int | None) -> int | None:
    raw = call.query(name)
    if raw is None or raw == "":
        return default
    try:
        value: Any = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a finite number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{name} must be a finite number")
    return v.number(name, value, lo, hi, default=default)


async def _pull(call: Call, queue: str, count: int, timeout: int, owner: Any, lock_ttl: Any) -> p.Jobs:
    command = p.PullJobs(
        queue,
        count=count,
        timeout_ms=timeout,
        owner=v.string("owner", owner),
        lock_ttl=v.number("lockTtl", lock_ttl, 1, v.DAY_MS),
    )
    return await call.client.call_queue(queue, command, p.Jobs, extra_wait_ms=timeout)


async def pull_job(call: Call) -> Result:
    queue = v.queue_name(call.params["queue"])
    timeout = _query_number(call, "timeout", 0, v.MAX_LONG_POLL_MS, 0) or 0
    lock_ttl = _query_number(call, "lockTtl", 1, v.DAY_MS, None)
    jobs = await _pull(call, queue, 1, timeout, call.query("owner"), lock_ttl)
    if not jobs.jobs:
        return b'{"ok":true,"job":null}'
    token = jobs.tokens[0] if jobs.tokens else None
    tail = b"}" if token is None else b',"token":' + v.encode_json(token) + b"}"
    return b'{"ok":true,"job":' + jobs.jobs[0] + tail


async def pull_jobs(call: Call) -> Result:
    queue = v.queue_name(call.params["queue"])
    body = v.decode_object(call.body)
    if body.get("count") is None:
        raise BadRequest("count is required")
    count = v.number("count", body["count"], 1, 1000, integer=True) or 1
    timeout = v.number("timeout", body.get("timeout"), 0, v.MAX_LONG_POLL_MS, default=0) or 0
    jobs = await _pull(call, queue, count, timeout, body.get("owner"), body.get("lockTtl"))
    out = b'{"ok":true,"jobs":[' + b",".join(jobs.jobs) + b"]"
    if body.get("owner") is not None:
        out += b',"tokens":' + v.encode_json(jobs.tokens)
    return out + b"}"


def _token(body: dict[str, Any]) -> str | None:
    return v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)


def holds(job_id: str) -> Callable[[p.Reply], bool]:
    """Whether a per-id outcome comes from the shard that has the job (done, or refused for a reason)."""

    def found(reply: p.Reply) -> bool:
        return isinstance(reply, p.AckOutcome) and (reply.acked > 0 or job_id not in reply.missing)

    return found


def single_outcome(reply: p.Reply, job_id: str) -> None:
    """Raise what a per-id outcome for one id says went wrong: a 400, "Job not found or not active" for no
    such job too, as the spec answers an ack (and the reference an ack, a fail or a heartbeat)."""
    outcome = expect(reply, p.AckOutcome)
    if job_id in outcome.missing:
        raise BadRequest(NOT_ACTIVE)
    if outcome.failed:
        raise BadRequest(outcome.failed.get(job_id, NOT_ACTIVE))


async def ack_job(call: Call) -> Result:
    job_id = call.params["id"]
    result, token, remove = v.ack_body(call.body)
    command = p.AckJobs([job_id], [result], [token], [remove] if remove else [])
    single_outcome(await call.client.call_for_id(job_id, command, holds(job_id)), job_id)
    return OK


async def ack_jobs_batch(call: Call) -> Result:
    body = v.decode_object(call.body)
    if body.get("ids") is None:
        raise BadRequest("ids is required")
    ids = v.strings("ids", body.get("ids"))
    results = body.get("results") or []
    tokens = body.get("tokens") or []
    removes = body.get("removeOnCompletes") or []
    if not isinstance(results, list) or not isinstance(tokens, list) or not isinstance(removes, list):
        raise BadRequest("results, tokens and removeOnCompletes must be arrays")
    encoded = [v.encode_json(results[i]) if i < len(results) else None for i in range(len(ids))]
    toks = [v.string("tokens[]", tokens[i]) if i < len(tokens) else None for i in range(len(ids))]
    columns: list[list[Any]] = [ids, encoded, toks]
    if removes:
        columns.append(
            [v.flag("removeOnCompletes[]", removes[i]) if i < len(removes) else False for i in range(len(ids))]
        )
    acked, failed = await call.client.per_id(ids, lambda idx: p.AckJobs(*pick(idx, *columns)))
    return batch_result(acked, failed)


def pick(idx: list[int], *columns: list[Any]) -> list[list[Any]]:
    """The entries at `idx` of each positional column (ids, results, tokens, ...)."""
    return [[column[i] for i in idx] for column in columns]


async def fail_job(call: Call) -> Result:
    job_id = call.params["id"]
    body = v.decode_object(call.body)
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        error = v.encode_json(error).decode()
    command = p.FailJob(
        job_id,
        error,
        _token(body),
        v.flag("unrecoverable", body.get("unrecoverable")),
        v.flag("removeOnFail", body.get("removeOnFail")),
    )
    reply = await call.client.call_for_id(job_id, command, _done)
    if not_found(reply):
        raise BadRequest(NOT_ACTIVE)  # as an ack of no such job
    raise_error(reply)
    return OK


def _done(reply: p.Reply) -> bool:
    return not isinstance(reply, p.Error)


def _has_job(reply: p.Reply) -> bool:
    """Whether a lookup's reply comes from the shard that has the job."""
    if isinstance(reply, p.JobState):
        return reply.state != "unknown"
    if isinstance(reply, p.JobResult):
        return reply.found
    return not isinstance(reply, p.Error)


async def get_job(call: Call) -> Result:
    job_id = call.params["id"]
    doc = await call.client.call_for_id(job_id, p.GetJob(job_id), _has_job, p.JobDoc)
    return b'{"ok":true,"job":' + doc.job + b"}"


async def get_job_by_custom_id(call: Call) -> Result:
    custom_id = call.params["custom_id"]
    for doc in await call.client.call_all(p.GetJob(custom_id)):
        if isinstance(doc, p.JobDoc):
            return b'{"ok":true,"job":' + doc.job + b"}"
    raise NotFound("Job not found")


async def get_job_state(call: Call) -> Result:
    job_id = call.params["id"]
    state = await call.client.call_for_id(job_id, p.GetJobState(job_id), _has_job, p.JobState)
    return encode({"ok": True, "id": job_id, "state": state.state})


async def get_job_result(call: Call) -> Result:
    job_id = call.params["id"]
    result = await call.client.call_for_id(job_id, p.GetJobResult(job_id), _has_job, p.JobResult)
    if not result.found:
        raise NotFound("Job not found")
    prefix = b'{"ok":true,"id":' + v.encode_json(job_id) + b',"result":'
    return prefix + (result.result or b"null") + b"}"


async def cancel_job(call: Call) -> Result:
    job_id = call.params["id"]
    raise_error(await call.client.call_for_id(job_id, p.CancelJob(job_id), _done))
    return OK


Op = Operation
Q = "/queues/{queue:queue}/jobs"

operations = [
    Op("POST", Q, add_job, p.AddJobs, p.Ids, hot=True, doc=Doc("Push a job", d.NewJob, reply=d.Pushed)),
    Op(
        "GET",
        Q,
        pull_job,
        p.PullJobs,
        p.Jobs,
        body=False,
        hot=True,
        doc=Doc("Pull the next job (long poll up to timeout ms)", query=d.PullQuery, reply=d.Pulled),
    ),
    Op(
        "POST", Q + "/bulk", add_jobs_bulk, p.AddJobs, p.Ids, hot=True, doc=Doc("Push jobs", d.Bulk, reply=d.PushedMany)
    ),
    Op(
        "POST",
        Q + "/pull-batch",
        pull_jobs,
        p.PullJobs,
        p.Jobs,
        hot=True,
        doc=Doc("Pull up to count jobs", d.PullBatch, reply=d.PulledMany),
    ),
    Op(
        "POST",
        "/jobs/ack-batch",
        ack_jobs_batch,
        p.AckJobs,
        p.AckOutcome,
        hot=True,
        doc=Doc("Acknowledge jobs", d.AckBatch, reply=d.Counted),
    ),
    Op(
        "GET",
        "/jobs/custom/{custom_id}",
        get_job_by_custom_id,
        p.GetJob,
        p.JobDoc,
        body=False,
        doc=Doc("A job by its custom id", reply=d.OneJob),
    ),
    Op("GET", "/jobs/{id}", get_job, p.GetJob, p.JobDoc, body=False, doc=Doc("A job", reply=d.OneJob)),
    Op(
        "DELETE",
        "/jobs/{id}",
        cancel_job,
        p.CancelJob,
        p.Done,
        body=False,
        doc=Doc(
            "Cancel a job",
            description="Works on waiting, delayed and active jobs; a completed or dead-lettered job is refused (400).",
        ),
    ),
    Op("POST", "/jobs/{id}/ack", ack_job, p.AckJobs, p.AckOutcome, hot=True, doc=Doc("Acknowledge a job", d.Ack)),
    Op(
        "POST", "/jobs/{id}/fail", fail_job, p.FailJob, p.Done, doc=Doc("Fail a job (retried or dead-lettered)", d.Fail)
    ),
    Op(
        "GET",
        "/jobs/{id}/state",
        get_job_state,
        p.GetJobState,
        p.JobState,
        body=False,
        doc=Doc("A job's state", reply=d.JobStateReply),
    ),
    Op(
        "GET",
        "/jobs/{id}/result",
        get_job_result,
        p.GetJobResult,
        p.JobResult,
        body=False,
        doc=Doc("A completed job's result", reply=d.JobResultReply),
    ),
]
