"""Routes of the cluster-wide registries the aggregator owns: crons, webhooks and workers."""

from __future__ import annotations

from typing import Any

from bunq import protocol as p
from bunq import validation as v
from bunq.errors import BadRequest
from bunq.http import Call, Operation, Result
from bunq.schedules import check_expression, check_timezone

MAX_NAME = 256


async def _aggregator(call: Call, command: p.Command) -> Result:
    return (await call.client.call_aggregator(command, p.Rendered)).body


def _required_string(body: dict[str, Any], name: str, max_length: int = MAX_NAME) -> str:
    value = v.string(name, body.get(name), max_length=max_length)
    if value is None:
        raise BadRequest(f"{name} is required")
    return value


# ---- crons ------------------------------------------------------------------------------------


def _cron(body: dict[str, Any]) -> p.AddCron:
    name = _required_string(body, "name")
    queue = v.queue_name(_required_string(body, "queue", v.MAX_QUEUE_NAME))
    if "data" not in body:
        raise BadRequest("data is required")
    data = v.encode_json(body["data"])
    if len(data) > v.MAX_DATA_BYTES:
        raise BadRequest("Job data too large (max 10MB)")
    schedule = v.string("schedule", body.get("schedule"), max_length=MAX_NAME)
    every = v.number("repeatEvery", body.get("repeatEvery"), 1, v.YEAR_MS, integer=True)
    if (schedule is None) == (every is None):
        raise BadRequest("Cron job must have either schedule or repeatEvery (not both)")
    if schedule is not None:
        check_expression(schedule)
    timezone = v.string("timezone", body.get("timezone")) or "UTC"
    check_timezone(timezone)
    return p.AddCron(
        p.CronSpec(
            name=name,
            queue=queue,
            data=data,
            schedule=schedule,
            repeat_every=every,
            timezone=timezone,
            priority=v.number("priority", body.get("priority"), -1_000_000, 1_000_000, integer=True, default=0) or 0,
            max_limit=v.number("maxLimit", body.get("maxLimit"), 1, 1_000_000_000, integer=True),
        )
    )


async def add_cron(call: Call) -> Result:
    return await _aggregator(call, _cron(v.decode_object(call.body)))


async def list_crons(call: Call) -> Result:
    return await _aggregator(call, p.ListCrons())


async def get_cron(call: Call) -> Result:
    return await _aggregator(call, p.GetCron(call.params["name"]))


async def delete_cron(call: Call) -> Result:
    return await _aggregator(call, p.DeleteCron(call.params["name"]))


# ---- webhooks ---------------------------------------------------------------------------------


async def add_webhook(call: Call) -> Result:
    body = v.decode_object(call.body)
    url = _required_string(body, "url", 2048)
    if body.get("events") is None:
        raise BadRequest("events is required")
    events = v.strings("events", body["events"])
    queue = v.string("queue", body.get("queue"), max_length=v.MAX_QUEUE_NAME)
    if queue is not None:
        v.queue_name(queue)
    secret = v.string("secret", body.get("secret"))
    return await _aggregator(call, p.AddWebhook(url, events, queue, secret))


async def list_webhooks(call: Call) -> Result:
    return await _aggregator(call, p.ListWebhooks())


async def delete_webhook(call: Call) -> Result:
    return await _aggregator(call, p.DeleteWebhook(call.params["id"]))


async def set_webhook_enabled(call: Call) -> Result:
    body = v.decode_object(call.body)
    if body.get("enabled") is None:
        raise BadRequest("enabled is required")
    return await _aggregator(call, p.SetWebhookEnabled(call.params["id"], v.flag("enabled", body["enabled"])))


# ---- workers ----------------------------------------------------------------------------------


async def register_worker(call: Call) -> Result:
    body = v.decode_object(call.body)
    queues = v.strings("queues", body.get("queues"))
    for queue in queues:
        v.queue_name(queue)
    command = p.RegisterWorker(
        name=v.string("name", body.get("name"), max_length=MAX_NAME),
        queues=queues,
        concurrency=v.number("concurrency", body.get("concurrency"), 1, 100_000, integer=True, default=1) or 1,
        hostname=v.string("hostname", body.get("hostname"), max_length=MAX_NAME),
        pid=v.number("pid", body.get("pid"), 0, 2**31, integer=True),
    )
    return await _aggregator(call, command)


async def list_workers(call: Call) -> Result:
    return await _aggregator(call, p.ListWorkers())


async def delete_worker(call: Call) -> Result:
    return await _aggregator(call, p.DeleteWorker(call.params["id"]))


async def worker_heartbeat(call: Call) -> Result:
    return await _aggregator(call, p.WorkerHeartbeat(call.params["id"]))


Op = Operation
R = p.Rendered

operations = [
    Op("GET", "/crons", list_crons, p.ListCrons, R, body=False),
    Op("POST", "/crons", add_cron, p.AddCron, R),
    Op("GET", "/crons/{name}", get_cron, p.GetCron, R, body=False),
    Op("DELETE", "/crons/{name}", delete_cron, p.DeleteCron, R, body=False),
    Op("GET", "/webhooks", list_webhooks, p.ListWebhooks, R, body=False),
    Op("POST", "/webhooks", add_webhook, p.AddWebhook, R),
    Op("DELETE", "/webhooks/{id}", delete_webhook, p.DeleteWebhook, R, body=False),
    Op("PUT", "/webhooks/{id}/enabled", set_webhook_enabled, p.SetWebhookEnabled, R),
    Op("GET", "/workers", list_workers, p.ListWorkers, R, body=False),
    Op("POST", "/workers", register_worker, p.RegisterWorker, R),
    Op("DELETE", "/workers/{id}", delete_worker, p.DeleteWorker, R, body=False),
    Op("POST", "/workers/{id}/heartbeat", worker_heartbeat, p.WorkerHeartbeat, R),
]
