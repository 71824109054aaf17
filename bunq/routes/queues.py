"""Queue routes: listing, counts, pause, drain, clean, obliterate, the DLQ, limits and configuration."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from bunq import apidoc as d
from bunq import protocol as p
from bunq import validation as v
from bunq.client import R, expect
from bunq.errors import BadRequest
from bunq.http import OK, Call, Doc, Operation, Result, encode
from bunq.stats import gather

S = p.State
JOB_STATES = (S.WAITING, S.DELAYED, S.ACTIVE, S.COMPLETED, S.FAILED, S.WAITING_CHILDREN)
CLEAN_STATES = (S.WAITING, S.DELAYED, S.COMPLETED, S.FAILED)
MAX_PAGE = 10_000


def _queue(call: Call) -> str:
    return v.queue_name(call.params["queue"])


async def _on_queue(call: Call, command: p.Command, kind: type[R]) -> R:
    return await call.client.call_queue(_queue(call), command, kind)


async def _act(call: Call, command: p.Command) -> Result:
    """Run a queue command whose reply only says it was done (its error raised)."""
    await _on_queue(call, command, p.Reply)
    return OK


def _query_int(call: Call, name: str, default: int, lo: int, hi: int) -> int:
    raw = call.query(name)
    if raw is None or raw == "":
        return default
    return v.integer_text(name, raw, lo, hi)


def _choice(name: str, value: Any, choices: tuple[p.State, ...]) -> p.State | None:
    if value is None or value == "":
        return None
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    return p.State(value)


async def list_queues(call: Call) -> Result:
    names: set[str] = set()
    for reply in await call.client.call_all(p.ListQueues()):
        names.update(expect(reply, p.QueueNames).names)
    return encode({"ok": True, "queues": sorted(names)})


async def queues_summary(call: Call) -> Result:
    """Every queue, its counts and whether it is paused: the reference's `GET /queues/summary`, a bare array."""
    merged = await gather(call.client)
    names = sorted(merged.queues)
    configs = await asyncio.gather(*(call.client.call_queue(q, p.GetQueueConfig(q), p.QueueConfig) for q in names))
    summary = []
    for name, config in zip(names, configs, strict=True):
        c = merged.queues[name]
        counts = d.SummaryCounts(c.waiting, c.prioritized, c.active, c.completed, c.failed, c.delayed)
        summary.append(d.QueueSummary(name, config.paused, counts, config.rate_limit, config.concurrency))
    return v.encode_json(summary)


class _Created(msgspec.Struct):
    createdAt: int = 0


_created = msgspec.json.Decoder(_Created)


async def list_jobs(call: Call) -> Result:
    """One state (`state`, or `status`), several (the reference's forms: `states=a,b`, `state=a,b`, or the
    parameter repeated; merged oldest first, or newest first with `asc=false`; a state it does not know
    matching nothing) or all."""
    queue = _queue(call)
    limit = _query_int(call, "limit", 1000, 1, MAX_PAGE)
    offset = _query_int(call, "offset", 0, 0, 1_000_000_000)
    sent = call.query_all("state", "status", "states")
    named = [s.strip() for value in sent for s in value.split(",") if s.strip()]
    asc = _asc(call.query("asc"))
    if len(sent) <= 1 and len(named) <= 1 and not call.query("states"):
        state = _choice("state", named[0] if named else None, JOB_STATES)
        jobs = await call.client.call_queue(queue, p.ListJobs(queue, state, limit, offset, asc), p.Jobs)
        return b'{"ok":true,"jobs":[' + b",".join(jobs.jobs) + b"]}"
    states = dict.fromkeys(p.State(s) for s in named if s in JOB_STATES)  # others: none (as the reference)
    pages = await asyncio.gather(
        *(call.client.call_queue(queue, p.ListJobs(queue, s, limit + offset, 0, asc), p.Jobs) for s in states)
    )
    found = sorted(
        (job for page in pages for job in page.jobs),
        key=lambda job: _created.decode(job).createdAt,
        reverse=asc is False,
    )
    return b'{"ok":true,"jobs":[' + b",".join(found[offset : offset + limit]) + b"]}"


def _asc(raw: str | None) -> bool | None:
    """`asc=true|false` (bunqueue's `GetJobs asc`): oldest or newest first; absent, each state's own order."""
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest("asc must be a boolean")


async def get_counts(call: Call) -> Result:
    counts = await _on_queue(call, p.GetCounts(_queue(call)), p.Counts)
    return encode({"ok": True, "counts": counts.counts})


async def get_count(call: Call) -> Result:
    counts = await _on_queue(call, p.GetCounts(_queue(call)), p.Counts)
    return encode({"ok": True, "count": counts.counts.live()})


async def get_priority_counts(call: Call) -> Result:
    counts = await _on_queue(call, p.GetPriorityCounts(_queue(call)), p.PriorityCounts)
    return encode({"ok": True, "queue": _queue(call), "counts": counts.counts})


async def _config(call: Call) -> p.QueueConfig:
    return await _on_queue(call, p.GetQueueConfig(_queue(call)), p.QueueConfig)


async def is_paused(call: Call) -> Result:
    return encode({"ok": True, "paused": (await _config(call)).paused})


async def pause_queue(call: Call) -> Result:
    return await _act(call, p.PauseQueue(_queue(call)))


async def resume_queue(call: Call) -> Result:
    return await _act(call, p.ResumeQueue(_queue(call)))


async def _count(call: Call, command: p.Command) -> Result:
    reply = await _on_queue(call, command, p.Count)
    return encode({"ok": True, "count": reply.count})


async def drain_queue(call: Call) -> Result:
    return await _count(call, p.DrainQueue(_queue(call)))


async def obliterate_queue(call: Call) -> Result:
    return await _act(call, p.ObliterateQueue(_queue(call)))


async def clean_queue(call: Call) -> Result:
    body = v.decode_object(call.body)
    grace = v.number("grace", body.get("grace"), 0, 10 * v.YEAR_MS, default=0) or 0
    state = _choice("state", body.get("state"), CLEAN_STATES)
    limit = v.number("limit", body.get("limit"), 1, 1_000_000, integer=True, default=1000) or 1000
    reply = await _on_queue(call, p.CleanQueue(_queue(call), grace, state, limit), p.Count)
    return encode({"ok": True, "count": reply.count, "ids": reply.ids})


async def promote_jobs(call: Call) -> Result:
    body = v.decode_object(call.body)
    count = v.number("count", body.get("count"), 1, 10_000_000, integer=True)
    return await _count(call, p.PromoteJobs(_queue(call), count))


async def retry_completed(call: Call) -> Result:
    body = v.decode_object(call.body)
    job_id = v.string("id", body.get("id"), max_length=v.MAX_ID_LENGTH)
    return await _count(call, p.RetryCompleted(_queue(call), job_id))


async def get_dlq(call: Call) -> Result:
    queue = _queue(call)
    count = _query_int(call, "count", 100, 1, MAX_PAGE)
    count = _query_int(call, "limit", count, 1, MAX_PAGE)
    offset = _query_int(call, "offset", 0, 0, 1_000_000_000)
    dlq = await call.client.call_queue(queue, p.GetDlq(queue, count, offset), p.DlqEntries)
    jobs = b"[" + b",".join(dlq.entries) + b"]"
    entries = v.encode_json([reference_entry(_entry.decode(entry)) for entry in dlq.entries])
    return b'{"ok":true,"jobs":' + jobs + b',"entries":' + entries + b',"total":' + str(dlq.total).encode() + b"}"


_entry = msgspec.json.Decoder(dict[str, Any])


def reference_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A DLQ entry in the reference's shape (its dashboards and clients read `entries`): the job nested,
    `attempts` a list of the failures (bunq keeps the last one of each entry, so one record), and the retry
    fields."""
    job = entry.get("job") or {}
    started, failed_at = job.get("startedAt"), entry.get("failedAt")
    last = {
        "attempt": entry.get("attempts", 0),
        "startedAt": started,
        "failedAt": failed_at,
        "reason": entry.get("reason"),
        "error": entry.get("error"),
        "duration": failed_at - started if isinstance(failed_at, int) and isinstance(started, int) else 0,
    }
    return {
        "job": job,
        "enteredAt": entry.get("enteredAt"),
        "reason": entry.get("reason"),
        "error": entry.get("error"),
        "attempts": [last],
        "retryCount": entry.get("retryCount", 0),
        "lastRetryAt": None,  # not kept
        "nextRetryAt": entry.get("nextRetryAt"),
        "expiresAt": entry.get("expiresAt"),
    }


async def retry_dlq(call: Call) -> Result:
    body = v.decode_object(call.body)
    job_id = v.string("jobId", body.get("jobId"), max_length=v.MAX_ID_LENGTH)
    count = v.number("count", body.get("count"), 1, 1_000_000_000, integer=True)
    return await _count(call, p.RetryDlq(_queue(call), job_id, count))


async def purge_dlq(call: Call) -> Result:
    return await _count(call, p.PurgeDlq(_queue(call)))


def _limit(call: Call) -> int:
    body = v.decode_object(call.body)
    if body.get("limit") is None:
        raise BadRequest("limit is required")
    return v.number("limit", body["limit"], 1, 1_000_000, integer=True) or 1


async def set_rate_limit(call: Call) -> Result:
    return await _act(call, p.SetRateLimit(_queue(call), _limit(call)))


async def clear_rate_limit(call: Call) -> Result:
    return await _act(call, p.SetRateLimit(_queue(call), None))


async def set_concurrency(call: Call) -> Result:
    return await _act(call, p.SetConcurrency(_queue(call), _limit(call)))


async def clear_concurrency(call: Call) -> Result:
    return await _act(call, p.SetConcurrency(_queue(call), None))


def _config_body(call: Call) -> dict[str, Any]:
    body = v.decode_object(call.body)
    config = body.get("config", body)
    if not isinstance(config, dict):
        raise BadRequest("config must be an object")
    return config


async def get_stall_config(call: Call) -> Result:
    return encode({"ok": True, "config": (await _config(call)).stall})


async def set_stall_config(call: Call) -> Result:
    c = _config_body(call)
    command = p.SetStallConfig(
        _queue(call),
        stall_interval=v.number("stallInterval", c.get("stallInterval"), 100, v.DAY_MS, integer=True),
        max_stalls=v.number("maxStalls", c.get("maxStalls"), 1, 1000, integer=True),
        grace_period=v.number("gracePeriod", c.get("gracePeriod"), 0, v.DAY_MS, integer=True),
        enabled=None if c.get("enabled") is None else v.flag("enabled", c["enabled"]),
    )
    reply = await _on_queue(call, command, p.QueueConfig)
    return encode({"ok": True, "config": reply.stall})


async def get_dlq_config(call: Call) -> Result:
    return encode({"ok": True, "config": (await _config(call)).dlq})


async def set_dlq_config(call: Call) -> Result:
    c = _config_body(call)
    auto_retry = c.get("autoRetry")
    if auto_retry is not None and not isinstance(auto_retry, bool):
        raise BadRequest("autoRetry must be a boolean")
    command = p.SetDlqConfig(
        _queue(call),
        auto_retry=auto_retry,
        max_age=v.number("maxAge", c.get("maxAge"), 1000, 10 * v.YEAR_MS, integer=True),
        max_entries=v.number("maxEntries", c.get("maxEntries"), 1, 10_000_000, integer=True),
        auto_retry_interval=v.number("autoRetryInterval", c.get("autoRetryInterval"), 100, v.YEAR_MS, integer=True),
        max_auto_retries=v.number("maxAutoRetries", c.get("maxAutoRetries"), 0, 1000, integer=True),
    )
    reply = await _on_queue(call, command, p.QueueConfig)
    return encode({"ok": True, "config": reply.dlq})


Op = Operation
Q = "/queues/{queue:queue}"
WRAPPED = "The settings may also come wrapped, as `{config: {...}}`; those left out keep their value."

operations = [
    Op(
        "GET",
        "/queues",
        list_queues,
        p.ListQueues,
        p.QueueNames,
        body=False,
        doc=Doc("Queue names", reply=d.QueueNames),
    ),
    Op(
        "GET",
        "/queues/summary",
        queues_summary,
        p.GetStats,
        p.ShardStats,
        body=False,
        doc=Doc("Every queue with its counts and whether it is paused", reply=list[d.QueueSummary]),
    ),
    Op(
        "GET",
        Q + "/jobs/list",
        list_jobs,
        p.ListJobs,
        p.Jobs,
        body=False,
        doc=Doc("A queue's jobs by state, paged", query=d.ListJobsQuery, reply=d.JobList),
    ),
    Op(
        "GET",
        Q + "/counts",
        get_counts,
        p.GetCounts,
        p.Counts,
        body=False,
        doc=Doc("Jobs by state", reply=d.CountsReply),
    ),
    Op("GET", Q + "/count", get_count, p.GetCounts, p.Counts, body=False, doc=Doc("Jobs in a queue", reply=d.Counted)),
    Op(
        "GET",
        Q + "/priority-counts",
        get_priority_counts,
        p.GetPriorityCounts,
        p.PriorityCounts,
        body=False,
        doc=Doc("Waiting and delayed jobs by priority", reply=d.PriorityCountsReply),
    ),
    Op(
        "GET",
        Q + "/paused",
        is_paused,
        p.GetQueueConfig,
        p.QueueConfig,
        body=False,
        doc=Doc("Whether a queue is paused", reply=d.PausedReply),
    ),
    Op("POST", Q + "/pause", pause_queue, p.PauseQueue, p.Done, doc=Doc("Pause a queue")),
    Op("POST", Q + "/resume", resume_queue, p.ResumeQueue, p.Done, doc=Doc("Resume a queue")),
    Op(
        "POST",
        Q + "/drain",
        drain_queue,
        p.DrainQueue,
        p.Count,
        doc=Doc("Remove waiting and delayed jobs", reply=d.Counted),
    ),
    Op(
        "POST",
        Q + "/obliterate",
        obliterate_queue,
        p.ObliterateQueue,
        p.Done,
        doc=Doc("Remove a queue and all its jobs"),
    ),
    Op("POST", Q + "/clean", clean_queue, p.CleanQueue, p.Count, doc=Doc("Remove old jobs", d.Clean, reply=d.Cleaned)),
    Op(
        "POST",
        Q + "/promote-jobs",
        promote_jobs,
        p.PromoteJobs,
        p.Count,
        doc=Doc("Promote delayed jobs", d.PromoteJobs, reply=d.Counted),
    ),
    Op(
        "POST",
        Q + "/retry-completed",
        retry_completed,
        p.RetryCompleted,
        p.Count,
        doc=Doc("Run completed jobs again", d.RetryCompleted, reply=d.Counted),
    ),
    Op(
        "GET",
        Q + "/dlq",
        get_dlq,
        p.GetDlq,
        p.DlqEntries,
        body=False,
        doc=Doc("DLQ entries", query=d.DlqQuery, reply=d.DlqReply),
    ),
    Op(
        "POST",
        Q + "/dlq/retry",
        retry_dlq,
        p.RetryDlq,
        p.Count,
        doc=Doc("Retry DLQ entries", d.RetryDlq, reply=d.Counted),
    ),
    Op("POST", Q + "/dlq/purge", purge_dlq, p.PurgeDlq, p.Count, doc=Doc("Empty the DLQ", reply=d.Counted)),
    Op(
        "PUT",
        Q + "/rate-limit",
        set_rate_limit,
        p.SetRateLimit,
        p.Done,
        doc=Doc("Set the rate limit (jobs/s)", d.Limit),
    ),
    Op("DELETE", Q + "/rate-limit", clear_rate_limit, p.SetRateLimit, p.Done, doc=Doc("Clear the rate limit")),
    Op(
        "PUT",
        Q + "/concurrency",
        set_concurrency,
        p.SetConcurrency,
        p.Done,
        doc=Doc("Set the concurrency limit", d.Limit),
    ),
    Op(
        "DELETE",
        Q + "/concurrency",
        clear_concurrency,
        p.SetConcurrency,
        p.Done,
        doc=Doc("Clear the concurrency limit"),
    ),
    Op(
        "GET",
        Q + "/stall-config",
        get_stall_config,
        p.GetQueueConfig,
        p.QueueConfig,
        body=False,
        doc=Doc("Stall detection settings", reply=d.StallConfigReply),
    ),
    Op(
        "PUT",
        Q + "/stall-config",
        set_stall_config,
        p.SetStallConfig,
        p.QueueConfig,
        doc=Doc(
            "Change stall detection",
            d.StallSettings,
            reply=d.StallConfigReply,
            description=WRAPPED,
        ),
    ),
    Op(
        "GET",
        Q + "/dlq-config",
        get_dlq_config,
        p.GetQueueConfig,
        p.QueueConfig,
        body=False,
        doc=Doc("DLQ settings", reply=d.DlqConfigReply),
    ),
    Op(
        "PUT",
        Q + "/dlq-config",
        set_dlq_config,
        p.SetDlqConfig,
        p.QueueConfig,
        doc=Doc("Change DLQ settings", d.DlqSettings, reply=d.DlqConfigReply, description=WRAPPED),
    ),
]
