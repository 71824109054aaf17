"""Routes of the cluster-wide registries the aggregator owns: crons, webhooks and workers.

The aggregator answers with typed entries (`Crons`, `Webhooks`, `Workers`); the JSON bodies are drawn here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bunq import apidoc as d
from bunq import protocol as p
from bunq import validation as v
from bunq.errors import BadRequest
from bunq.http import OK, Call, Doc, Operation, Result, encode, encode_data
from bunq.schedules import check_expression, check_timezone

MAX_NAME = 256
REMOVED = b'{"ok":true,"data":{"removed":true}}'


# ---- crons ------------------------------------------------------------------------------------


def _cron(body: dict[str, Any]) -> p.AddCron:
    name = v.required_string("name", body.get("name"), max_length=MAX_NAME)
    queue = v.queue_name(v.required_string("queue", body.get("queue"), max_length=v.MAX_QUEUE_NAME))
    if "data" not in body:
        raise BadRequest("data is required")
    data = v.encode_json(body["data"])
    if len(data) > v.MAX_DATA_BYTES:
        raise BadRequest("Job data too large (max 10MB)")
    schedule = v.string("schedule", body.get("schedule"), max_length=MAX_NAME)
    every = v.number("repeatEvery", body.get("repeatEvery"), 1, v.YEAR_MS, integer=True)
    if schedule is None and every is None:
        raise BadRequest("Cron job must have either schedule or repeatEvery")
    if schedule is not None and every is not None:
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


def _cron_view(cron: p.CronEntry) -> d.CronView:
    return d.CronView(
        name=cron.name,
        queue=cron.queue,
        data=msgspec.Raw(cron.data),
        schedule=cron.schedule,
        repeatEvery=cron.repeat_every,
        timezone=cron.timezone,
        priority=cron.priority,
        maxLimit=cron.max_limit,
        executions=cron.executions,
        nextRun=cron.next_run,
        lastRun=cron.last_run,
        createdAt=cron.created_at,
    )


async def _one_cron(call: Call, command: p.Command) -> Result:
    cron = (await call.client.call_aggregator(command, p.Crons)).crons[0]
    return encode({"ok": True, "cron": _cron_view(cron)})


async def add_cron(call: Call) -> Result:
    return await _one_cron(call, _cron(v.decode_object(call.body)))


async def list_crons(call: Call) -> Result:
    crons = await call.client.call_aggregator(p.ListCrons(), p.Crons)
    return encode({"ok": True, "crons": [_cron_view(c) for c in crons.crons]})


async def get_cron(call: Call) -> Result:
    return await _one_cron(call, p.GetCron(call.params["name"]))


async def delete_cron(call: Call) -> Result:
    await call.client.call_aggregator(p.DeleteCron(call.params["name"]), p.Done)
    return OK


# ---- webhooks ---------------------------------------------------------------------------------


async def add_webhook(call: Call) -> Result:
    body = v.decode_object(call.body)
    url = v.required_string("url", body.get("url"), max_length=2048)
    if body.get("events") is None:
        raise BadRequest("events is required")
    events = v.strings("events", body["events"])
    queue = v.string("queue", body.get("queue"), max_length=v.MAX_QUEUE_NAME)
    if queue is not None:
        v.queue_name(queue)
    secret = v.string("secret", body.get("secret"))
    hook = (await call.client.call_aggregator(p.AddWebhook(url, events, queue, secret), p.Webhooks)).webhooks[0]
    data = {"webhookId": hook.id, "url": hook.url, "events": hook.events, "queue": hook.queue}
    return encode_data({**data, "createdAt": hook.created_at})


def _webhook_view(hook: p.WebhookEntry) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": hook.events,
        "queue": hook.queue,
        "enabled": hook.enabled,
        "createdAt": hook.created_at,
        "lastTriggered": hook.last_triggered,
        "successCount": hook.success_count,
        "failureCount": hook.failure_count,
    }


async def list_webhooks(call: Call) -> Result:
    hooks = (await call.client.call_aggregator(p.ListWebhooks(), p.Webhooks)).webhooks
    stats = {"total": len(hooks), "enabled": sum(1 for h in hooks if h.enabled)}
    return encode_data({"webhooks": [_webhook_view(h) for h in hooks], "stats": stats})


async def delete_webhook(call: Call) -> Result:
    await call.client.call_aggregator(p.DeleteWebhook(call.params["id"]), p.Done)
    return REMOVED


async def set_webhook_enabled(call: Call) -> Result:
    body = v.decode_object(call.body)
    if body.get("enabled") is None:
        raise BadRequest("enabled is required")
    command = p.SetWebhookEnabled(call.params["id"], v.flag("enabled", body["enabled"]))
    hook = (await call.client.call_aggregator(command, p.Webhooks)).webhooks[0]
    return encode_data({"id": hook.id, "enabled": hook.enabled})


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
        id=v.string("workerId", body.get("workerId"), max_length=v.MAX_ID_LENGTH),
    )
    reply = await call.client.call_aggregator(command, p.Workers)
    return encode_data(_worker_view(reply.workers[0], reply.now))


def _worker_view(worker: p.WorkerEntry, now: int) -> dict[str, Any]:
    return {
        "id": worker.id,
        "workerId": worker.id,
        "name": worker.name,
        "queues": worker.queues,
        "concurrency": worker.concurrency,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "status": "active",
        "registeredAt": worker.registered_at,
        "lastSeen": worker.last_seen,
        "activeJobs": worker.active_jobs,
        "processedJobs": worker.processed_jobs,
        "failedJobs": worker.failed_jobs,
        "currentJob": worker.current_job,
        "uptime": now - worker.registered_at,  # ms, as the reference counts it
    }


async def list_workers(call: Call) -> Result:
    reply = await call.client.call_aggregator(p.ListWorkers(), p.Workers)
    workers = reply.workers
    stats = {
        "total": len(workers),
        "active": len(workers),
        "totalProcessed": sum(w.processed_jobs for w in workers),
        "totalFailed": sum(w.failed_jobs for w in workers),
        "activeJobs": sum(w.active_jobs for w in workers),
        "concurrencySlots": sum(w.concurrency for w in workers),
    }
    views = [_worker_view(w, reply.now) for w in workers]
    return encode_data({"workers": views, "stats": stats})


async def delete_worker(call: Call) -> Result:
    await call.client.call_aggregator(p.DeleteWorker(call.params["id"]), p.Done)
    return REMOVED


async def worker_heartbeat(call: Call) -> Result:
    body = v.decode_object(call.body)
    counts = (v.number(name, body.get(name), 0, 2**53, integer=True) for name in ("activeJobs", "processed", "failed"))
    command = p.WorkerHeartbeat(call.params["id"], *counts)
    worker = (await call.client.call_aggregator(command, p.Workers)).workers[0]
    return encode_data({"ok": True, "lastSeen": worker.last_seen})


Op = Operation

operations = [
    Op("GET", "/crons", list_crons, p.ListCrons, p.Crons, body=False, doc=Doc("Crons", reply=d.CronList)),
    Op("POST", "/crons", add_cron, p.AddCron, p.Crons, doc=Doc("Add or replace a cron", d.AddCron, reply=d.CronReply)),
    Op("GET", "/crons/{name}", get_cron, p.GetCron, p.Crons, body=False, doc=Doc("A cron", reply=d.CronReply)),
    Op("DELETE", "/crons/{name}", delete_cron, p.DeleteCron, p.Done, body=False, doc=Doc("Delete a cron")),
    Op(
        "GET",
        "/webhooks",
        list_webhooks,
        p.ListWebhooks,
        p.Webhooks,
        body=False,
        doc=Doc("Webhooks", reply=d.WebhookList),
    ),
    Op(
        "POST",
        "/webhooks",
        add_webhook,
        p.AddWebhook,
        p.Webhooks,
        doc=Doc("Add a webhook", d.AddWebhook, reply=d.WebhookAddedReply),
    ),
    Op(
        "DELETE",
        "/webhooks/{id}",
        delete_webhook,
        p.DeleteWebhook,
        p.Done,
        body=False,
        doc=Doc("Delete a webhook", reply=d.Removed),
    ),
    Op(
        "PUT",
        "/webhooks/{id}/enabled",
        set_webhook_enabled,
        p.SetWebhookEnabled,
        p.Webhooks,
        doc=Doc("Enable or disable a webhook", d.SetEnabled, reply=d.WebhookEnabledReply),
    ),
    Op("GET", "/workers", list_workers, p.ListWorkers, p.Workers, body=False, doc=Doc("Workers", reply=d.WorkerList)),
    Op(
        "POST",
        "/workers",
        register_worker,
        p.RegisterWorker,
        p.Workers,
        doc=Doc("Register a worker", d.RegisterWorker, reply=d.WorkerReply),
    ),
    Op(
        "DELETE",
        "/workers/{id}",
        delete_worker,
        p.DeleteWorker,
        p.Done,
        body=False,
        doc=Doc("Unregister a worker", reply=d.Removed),
    ),
    Op(
        "POST",
        "/workers/{id}/heartbeat",
        worker_heartbeat,
        p.WorkerHeartbeat,
        p.Workers,
        doc=Doc("A worker's heartbeat", d.WorkerHeartbeat, reply=d.WorkerSeen),
    ),
]
