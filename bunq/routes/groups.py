"""Group commands (WebSocket and TCP only, as bunqueue serves them): a group's counts, its pause, its
concurrency and its rate limit. Each answers bunqueue's shape, `{ok: true, data: {...}}`; the message's
`queue` is the path parameter, the rest (`groupId`, `max`, ...) its body."""

from __future__ import annotations

from typing import Any

from bunq import protocol as p
from bunq import validation as v
from bunq.http import OK, Call, Result, encode_data


def _target(call: Call) -> tuple[str, str, dict[str, Any]]:
    """The queue, the group and the whole message body, checked in bunqueue's order."""
    queue = v.queue_name(call.params["queue"])
    body = v.decode_object(call.body)
    return queue, v.group_id(body.get("groupId")), body


async def _group(call: Call) -> p.GroupInfo:
    queue, group, body = _target(call)
    limit: Any = body.get("maxJobs")  # anything but a whole number is ignored, as bunqueue ignores it
    whole = isinstance(limit, int | float) and not isinstance(limit, bool) and float(limit).is_integer()
    wanted = int(limit) if whole and abs(limit) <= v.MAX_SAFE_INTEGER else None
    return await call.client.call_queue(queue, p.GetGroup(queue, group, wanted), p.GroupInfo)


async def get_group_jobs_count(call: Call) -> Result:
    return encode_data({"count": (await _group(call)).queued})


async def get_groups_jobs_count(call: Call) -> Result:
    """Every group's waiting and delayed jobs together (bunqueue takes `maxCount` and ignores it, as here)."""
    queue = v.queue_name(call.params["queue"])
    reply = await call.client.call_queue(queue, p.CountGroupedJobs(queue), p.Count)
    return encode_data({"count": reply.count})


async def get_group_active_count(call: Call) -> Result:
    return encode_data({"count": (await _group(call)).active})


async def set_group_rate_limit(call: Call) -> Result:
    queue, group, body = _target(call)
    most = v.positive_integer("max", body.get("max"))
    duration = v.positive_integer("duration", body.get("duration"))
    await call.client.call_queue(queue, p.SetGroupRateLimit(queue, group, most, duration), p.Changed)
    return OK


async def get_group_rate_limit(call: Call) -> Result:
    limit = (await _group(call)).rate_limit
    return encode_data({"limit": None if limit is None else {"max": limit[0], "duration": limit[1]}})


async def remove_group_rate_limit(call: Call) -> Result:
    queue, group, _ = _target(call)
    reply = await call.client.call_queue(queue, p.SetGroupRateLimit(queue, group, None), p.Changed)
    return encode_data({"removed": int(reply.changed)})


async def get_group_rate_limit_ttl(call: Call) -> Result:
    return encode_data({"ttl": (await _group(call)).rate_limit_ttl})


async def set_group_concurrency(call: Call) -> Result:
    queue, group, body = _target(call)
    concurrency = v.positive_integer("concurrency", body.get("concurrency"))
    await call.client.call_queue(queue, p.SetGroupConcurrency(queue, group, concurrency), p.Changed)
    return OK


async def get_group_concurrency(call: Call) -> Result:
    return encode_data({"concurrency": (await _group(call)).concurrency})


async def remove_group_concurrency(call: Call) -> Result:
    queue, group, _ = _target(call)
    reply = await call.client.call_queue(queue, p.SetGroupConcurrency(queue, group, None), p.Changed)
    return encode_data({"removed": int(reply.changed)})


async def pause_group(call: Call) -> Result:
    queue, group, _ = _target(call)
    reply = await call.client.call_queue(queue, p.PauseGroup(queue, group), p.Changed)
    return encode_data({"changed": reply.changed})


async def resume_group(call: Call) -> Result:
    queue, group, _ = _target(call)
    reply = await call.client.call_queue(queue, p.ResumeGroup(queue, group), p.Changed)
    return encode_data({"changed": reply.changed})


async def is_group_paused(call: Call) -> Result:
    return encode_data({"paused": (await _group(call)).paused})


async def rate_limit_group(call: Call) -> Result:
    queue, group, body = _target(call)
    duration = v.positive_integer("duration", body.get("duration"))
    await call.client.call_queue(queue, p.RateLimitGroup(queue, group, duration), p.Done)
    return OK


# bunqueue has no HTTP routes for these: WebSocket and TCP only (`bunq.ws_commands.PROTOCOL_ONLY`)
WS_ONLY = (
    get_group_jobs_count, get_groups_jobs_count, get_group_active_count, set_group_rate_limit, get_group_rate_limit,
    remove_group_rate_limit, get_group_rate_limit_ttl, set_group_concurrency, get_group_concurrency,
    remove_group_concurrency, pause_group, resume_group, is_group_paused, rate_limit_group,
)  # fmt: skip
