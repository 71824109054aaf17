"""Routes for operations on one job: progress, data, priority, promote, delays, discard, wait, children,
heartbeats, lock extensions and logs (the rest of the spec's "Jobs" group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from bunq import apidoc as d
from bunq import protocol as p
from bunq import validation as v
from bunq.client import R, expect
from bunq.errors import BadRequest, NotFound
from bunq.http import OK, Call, Doc, Operation, Result, encode
from bunq.routes.jobs import holds, pick, single_outcome

NOT_DELAYED = "Job not found or not delayed"

MAX_WAIT_MS = 600_000
MAX_MESSAGE = 10_000
LOG_LEVELS = tuple(p.LogLevel)


def _handled(reply: p.Reply) -> bool:
    """Whether a shard dealt with the job: done, or refused for a reason other than not found or bad request."""
    return not isinstance(reply, p.Error) or reply.code not in ("not_found", "bad_request")


async def _on_job(call: Call, command: p.Command, kind: type[R]) -> R:
    """Run a command on the shard holding the job (asking every shard for a client-chosen id)."""
    return await call.client.call_for_id(call.params["id"], command, _handled, kind)


async def _act(call: Call, command: p.Command) -> None:
    """Run a command on the job whose reply only says it was done (its error raised)."""
    await _on_job(call, command, p.Reply)


async def get_progress(call: Call) -> Result:
    progress = await _on_job(call, p.GetProgress(call.params["id"]), p.Progress)
    return encode({"ok": True, "progress": progress.progress, "message": progress.message})


async def update_progress(call: Call) -> Result:
    body = v.decode_object(call.body)
    if body.get("progress") is None:
        raise BadRequest("progress is required")
    v.number("progress", body["progress"], 0, 100)
    progress: int | float = body["progress"]  # checked: a number in [0, 100], kept as sent (50.5 stays 50.5)
    message = v.string("message", body.get("message"), max_length=MAX_MESSAGE, allow_empty=True)
    token = v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)
    await _act(call, p.UpdateProgress(call.params["id"], progress, message, token))
    return OK


async def update_data(call: Call) -> Result:
    data = v.data_body(call.body)
    await _act(call, p.UpdateData(call.params["id"], data))
    return OK


async def change_priority(call: Call) -> Result:
    body = v.decode_object(call.body)
    if body.get("priority") is None:
        raise BadRequest("priority is required")
    priority = v.number("priority", body["priority"], -1_000_000, 1_000_000, integer=True) or 0
    await _act(call, p.ChangePriority(call.params["id"], priority))
    return OK


async def promote_job(call: Call) -> Result:
    try:
        await _act(call, p.PromoteJob(call.params["id"]))
    except NotFound:
        raise BadRequest(NOT_DELAYED) from None  # the spec's answer when the job does not exist, too
    return OK


async def move_to_wait(call: Call) -> Result:
    """bunqueue's `MoveToWait` command (WebSocket and TCP; its `Job.retry()`), as the reference serves it: a
    delayed job is promoted, an active one goes back to waiting (its attempts untouched, a `token` fencing it),
    a failed one is retried from the DLQ, a waiting one stays; any other is refused. Over HTTP,
    `move-to-wait` is the spec's alias of promote."""
    body = v.decode_object(call.body)
    token = v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)
    job_id = call.params["id"]
    try:
        job = _placed.decode((await _on_job(call, p.GetJob(job_id), p.JobDoc)).job)
    except NotFound:
        raise BadRequest("Cannot move job from state 'unknown' to waiting") from None
    state = job.state
    if state == p.State.DELAYED:
        return await promote_job(call)
    if state == p.State.WAITING:
        return OK
    if state == p.State.ACTIVE:
        release = p.ReleaseJobs([job_id], [token])
        released = await call.client.call_for_id(job_id, release, _counted, p.Count)
        if not released.count:
            raise BadRequest("Job not found or not active")
        return OK
    if state == p.State.FAILED:
        retried = await call.client.call_queue(job.queue, p.RetryDlq(job.queue, job_id, None), p.Count)
        if not retried.count:
            raise BadRequest("Failed job not in DLQ")
        return OK
    raise BadRequest(f"Cannot move job from state '{state}' to waiting")


class _Placed(msgspec.Struct):
    queue: str
    state: str


_placed = msgspec.json.Decoder(_Placed)


def _counted(reply: p.Reply) -> bool:
    return isinstance(reply, p.Count) and reply.count > 0


def _delay(body: dict[str, Any]) -> int:
    if body.get("delay") is None:
        raise BadRequest("delay is required")
    return v.number("delay", body["delay"], 0, v.YEAR_MS) or 0


async def move_to_delayed(call: Call) -> Result:
    body = v.decode_object(call.body)
    token = v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)
    await _act(call, p.MoveToDelayed(call.params["id"], _delay(body), token))
    return OK


async def change_delay(call: Call) -> Result:
    body = v.decode_object(call.body)
    await _act(call, p.ChangeDelay(call.params["id"], _delay(body)))
    return OK


async def discard_job(call: Call) -> Result:
    body = v.decode_object(call.body)
    token = v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)
    await _act(call, p.DiscardJob(call.params["id"], token))
    return OK


async def wait_job(call: Call) -> Result:
    body = v.decode_object(call.body)
    timeout = v.number("timeout", body.get("timeout"), 0, MAX_WAIT_MS, default=30_000) or 0
    job_id = call.params["id"]
    command = p.WaitJob(job_id, timeout)
    shard = call.client.shard_for_id(job_id)
    if shard is not None:
        reply = await call.client.call(shard, command, p.WaitOutcome, extra_wait_ms=timeout)
    else:
        replies = await call.client.call_all(command, extra_wait_ms=timeout)
        reply = expect(next((r for r in replies if isinstance(r, p.WaitOutcome)), replies[0]), p.WaitOutcome)
    if reply.completed:
        return b'{"ok":true,"completed":true,"result":' + (reply.result or b"null") + b"}"
    out: dict[str, Any] = {"ok": True, "completed": False}
    if reply.state is not None:
        out["state"] = reply.state
    return encode(out)


LOG_ADDED = b'{"ok":true,"data":{"added":true}}'  # `data`, as the reference answers
HEARTBEAT_KEPT = b'{"ok":true,"data":{"ok":true}}'  # likewise


async def get_children(call: Call) -> Result:
    children = await _on_job(call, p.GetChildren(call.params["id"]), p.ChildrenValues)
    values = b"{" + b",".join(v.encode_json(k) + b":" + value for k, value in children.values.items()) + b"}"
    return b'{"ok":true,"values":' + values + b',"data":{"values":' + values + b"}}"  # `data`: the reference's


async def heartbeat(call: Call) -> Result:
    await _heartbeat(call)
    return HEARTBEAT_KEPT


async def _heartbeat(call: Call) -> None:
    body = v.decode_object(call.body)
    token = v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)
    duration = v.number("duration", body.get("duration"), 1, v.DAY_MS)
    job_id = call.params["id"]
    command = p.Heartbeat([job_id], [token], [duration])
    single_outcome(await call.client.call_for_id(job_id, command, holds(job_id)), job_id)


async def extend_lock(call: Call) -> Result:
    body = v.decode_object(call.body)
    if body.get("duration") is None:
        raise BadRequest("duration is required")
    await _heartbeat(call)
    return OK


async def heartbeat_batch(call: Call) -> Result:
    body = v.decode_object(call.body)
    ids = _ids(body)
    tokens = _positional(body, "tokens", len(ids), lambda name, x: v.string(name, x, max_length=v.MAX_ID_LENGTH))
    durations = _positional(body, "durations", len(ids), lambda name, x: v.number(name, x, 1, v.DAY_MS))
    done, failed = await call.client.per_id(ids, lambda idx: _heartbeats(pick(idx, ids, tokens, durations)))
    # 200 whatever was refused, as the reference answers (a worker's heartbeat loop must not read one lost
    # lease as all of them failing): `count` of those kept alive, `failed` naming the others and why
    count = len(done)
    out: dict[str, Any] = {"ok": True, "count": count, "data": {"ok": True, "count": count}}
    if failed:
        out["failed"] = failed
    return encode(out)


def _heartbeats(columns: list[list[Any]]) -> p.Heartbeat:
    ids, tokens, durations = columns
    return p.Heartbeat(ids, tokens, durations)


def _ids(body: dict[str, Any]) -> list[str]:
    if body.get("ids") is None:
        raise BadRequest("ids is required")
    return v.strings("ids", body["ids"])


def _positional(body: dict[str, Any], name: str, n: int, check: Callable[[str, Any], Any]) -> list[Any]:
    values = body.get(name) or []
    if not isinstance(values, list):
        raise BadRequest(f"{name} must be an array")
    return [check(f"{name}[{i}]", values[i]) if i < len(values) else None for i in range(n)]


async def extend_locks(call: Call) -> Result:
    return await heartbeat_batch(call)


async def get_logs(call: Call) -> Result:
    logs = await _on_job(call, p.GetLogs(call.params["id"]), p.Logs)
    entries = b"[" + b",".join(logs.logs) + b"]"
    count = str(len(logs.logs)).encode()
    return b'{"ok":true,"logs":' + entries + b',"data":{"logs":' + entries + b',"count":' + count + b"}}"


async def add_log(call: Call) -> Result:
    body = v.decode_object(call.body)
    message = v.string("message", body.get("message"), max_length=MAX_MESSAGE, allow_empty=True)
    if message is None:
        raise BadRequest("message is required")
    level = body.get("level", "info")
    if level not in LOG_LEVELS:
        raise BadRequest(f"level must be one of {', '.join(LOG_LEVELS)}")
    await _act(call, p.AddLog(call.params["id"], message, level))
    return LOG_ADDED


async def clear_logs(call: Call) -> Result:
    await _act(call, p.ClearLogs(call.params["id"]))
    return OK


Op = Operation
J = "/jobs/{id}"

operations = [
    Op(
        "POST",
        "/jobs/heartbeat-batch",
        heartbeat_batch,
        p.Heartbeat,
        p.AckOutcome,
        doc=Doc("Heartbeat jobs", d.HeartbeatBatch, reply=d.Counted),
    ),
    Op(
        "POST",
        "/jobs/extend-locks",
        extend_locks,
        p.Heartbeat,
        p.AckOutcome,
        doc=Doc("Extend jobs' locks", d.HeartbeatBatch, reply=d.Counted),
    ),
    Op(
        "GET",
        J + "/progress",
        get_progress,
        p.GetProgress,
        p.Progress,
        body=False,
        doc=Doc("A job's progress", reply=d.ProgressReply),
    ),
    Op(
        "POST", J + "/progress", update_progress, p.UpdateProgress, p.Done, doc=Doc("Report progress", d.UpdateProgress)
    ),
    Op("PUT", J + "/data", update_data, p.UpdateData, p.Done, doc=Doc("Replace a job's data", d.UpdateData)),
    Op("PUT", J + "/priority", change_priority, p.ChangePriority, p.Done, doc=Doc("Change priority", d.ChangePriority)),
    Op("POST", J + "/promote", promote_job, p.PromoteJob, p.Done, doc=Doc("Promote a delayed job")),
    Op("POST", J + "/move-to-wait", promote_job, p.PromoteJob, p.Done, doc=Doc("Move a delayed job to waiting")),
    Op(
        "POST",
        J + "/move-to-delayed",
        move_to_delayed,
        p.MoveToDelayed,
        p.Done,
        doc=Doc("Move an active job back to delayed", d.MoveToDelayed),
    ),
    Op(
        "PUT", J + "/delay", change_delay, p.ChangeDelay, p.Done, doc=Doc("Change a delayed job's delay", d.ChangeDelay)
    ),
    Op("POST", J + "/discard", discard_job, p.DiscardJob, p.Done, doc=Doc("Discard a job to the DLQ", d.Token)),
    Op(
        "POST",
        J + "/wait",
        wait_job,
        p.WaitJob,
        p.WaitOutcome,
        doc=Doc("Wait for a job to complete (up to timeout ms)", d.Wait, reply=d.WaitReply),
    ),
    Op(
        "GET",
        J + "/children",
        get_children,
        p.GetChildren,
        p.ChildrenValues,
        body=False,
        doc=Doc("Results of a job's children", reply=d.ChildrenReply),
    ),
    Op("POST", J + "/heartbeat", heartbeat, p.Heartbeat, p.AckOutcome, doc=Doc("Heartbeat an active job", d.Heartbeat)),
    Op(
        "POST", J + "/extend-lock", extend_lock, p.Heartbeat, p.AckOutcome, doc=Doc("Extend a job's lock", d.ExtendLock)
    ),
    Op("GET", J + "/logs", get_logs, p.GetLogs, p.Logs, body=False, doc=Doc("A job's logs", reply=d.LogsReply)),
    Op("POST", J + "/logs", add_log, p.AddLog, p.Done, doc=Doc("Add a log line", d.AddLog)),
    Op("DELETE", J + "/logs", clear_logs, p.ClearLogs, p.Done, body=False, doc=Doc("Clear a job's logs")),
]
