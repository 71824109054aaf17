"""bunqueue's queue inspection and upkeep commands, answered in its `{ok, data}` shapes: a queue's limits and
where it stands against them, DLQ figures and the removal of one entry, unique (deduplication) keys, and
event trimming. The spec gives them no HTTP route; `bunq.ws_commands` runs them for WebSocket and TCP.
"""

from __future__ import annotations

from bunq import protocol as p
from bunq import validation as v
from bunq.client import expect
from bunq.errors import BadRequest
from bunq.http import Call, Result, encode_data

R = p.DlqReason
# bunqueue's DLQ reasons, in its order; each of bunq's lands on the one that names the same cause
REFERENCE_REASONS = (
    "explicit_fail",
    "max_attempts_exceeded",
    "timeout",
    "stalled",
    "ttl_expired",  # never: a job whose ttl passes is discarded (the spec), not dead-lettered
    "worker_lost",
    "unknown",
)
REASON_KEYS: dict[str, str] = {
    R.MAX_ATTEMPTS_EXCEEDED: "max_attempts_exceeded",
    R.UNRECOVERABLE: "explicit_fail",  # the worker failed it for good
    R.DISCARDED: "explicit_fail",  # a client sent it to the DLQ
    R.TIMED_OUT: "timeout",
    R.STALLED: "stalled",
    R.LOCK_EXPIRED: "worker_lost",  # its worker stopped renewing the lease
    R.DEPENDENCY_FAILED: "unknown",  # bunqueue has no name for it
}


def _queue(call: Call) -> str:
    return v.queue_name(call.params["queue"])


async def get_queue_limits(call: Call) -> Result:
    queue = _queue(call)
    max_jobs = v.number("maxJobs", v.decode_object(call.body).get("maxJobs"), 1, 1_000_000_000, integer=True)
    limits = await call.client.call_queue(queue, p.GetQueueLimits(queue, max_jobs), p.QueueLimits)
    rate = None if limits.rate_limit is None else {"max": limits.rate_limit, "duration": limits.rate_window}
    view = {
        "rateLimit": rate,
        "rateLimitTtl": limits.rate_limit_ttl,
        "concurrencyLimit": limits.concurrency,
        "maxed": limits.maxed,
    }
    return encode_data({"limits": view})


async def get_dlq_stats(call: Call) -> Result:
    queue = _queue(call)
    stats = await call.client.call_queue(queue, p.GetDlqStats(queue), p.DlqStats)
    by_reason = dict.fromkeys(REFERENCE_REASONS, 0)
    for reason, count in stats.by_reason.items():
        by_reason[REASON_KEYS.get(reason, "unknown")] += count
    view = {
        "total": stats.total,
        "byReason": by_reason,
        "byQueue": {queue: stats.total},
        "pendingRetry": stats.pending_retry,
        "expired": stats.expired,
        "oldestEntry": stats.oldest,
        "newestEntry": stats.newest,
    }
    return encode_data({"stats": view})


async def remove_dlq_job(call: Call) -> Result:
    queue = _queue(call)
    job_id = v.required_string("jobId", v.decode_object(call.body).get("jobId"), max_length=v.MAX_ID_LENGTH)
    removed = await call.client.call_queue(queue, p.RemoveDlqJob(queue, job_id), p.Count)
    return encode_data({"removed": removed.count > 0})


async def trim_events(call: Call) -> Result:
    """bunqueue keeps a log of each queue's lifecycle events and trims it to `maxLength`; bunq publishes its
    events and keeps none, so there is never one to trim."""
    _queue(call)
    body = v.decode_object(call.body)
    if body.get("maxLength") is None:
        raise BadRequest("maxLength is required")
    v.number("maxLength", body["maxLength"], 0, 2**53 - 1, integer=True)
    return encode_data({"removed": 0})


async def get_deduplication_job_id(call: Call) -> Result:
    queue = _queue(call)
    key = v.required_string("deduplicationId", v.decode_object(call.body).get("deduplicationId"))
    holder = await call.client.call_queue(queue, p.GetDeduplicationJobId(queue, key), p.Ids)
    return encode_data({"jobId": holder.ids[0] if holder.ids else None})


async def remove_deduplication_key(call: Call) -> Result:
    queue = _queue(call)
    key = v.required_string("deduplicationId", v.decode_object(call.body).get("deduplicationId"))
    freed = await call.client.call_queue(queue, p.RemoveDeduplicationKey(queue, key), p.Count)
    return encode_data({"count": freed.count})


def _freed(reply: p.Reply) -> bool:
    return isinstance(reply, p.Count) and reply.count > 0


async def remove_job_deduplication_key(call: Call) -> Result:
    job_id = call.params["id"]
    reply = await call.client.call_for_id(job_id, p.RemoveJobDeduplicationKey(job_id), _freed)
    return encode_data({"removed": expect(reply, p.Count).count > 0})
