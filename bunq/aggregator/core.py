"""The aggregator without its sockets: the cluster-wide registries (crons, webhooks, workers, the HTTP
rate limit, the fronts' connection counts) and the commands the fronts send them.

`bunq.aggregator.server` runs one behind ZeroMQ; the tests run one in-process, on their own clock. It
pushes cron jobs through a `Shards` link, publishes through a callback, and takes the job events its
webhooks and worker counts need (`topics`) through `on_event`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from bunq import protocol as p
from bunq.aggregator import workers as workers_mod
from bunq.aggregator.crons import Cron, CronTable, fire_seed
from bunq.aggregator.fronts import FrontConnections
from bunq.aggregator.ratelimit import RateLimiter
from bunq.aggregator.store import RegistryStore
from bunq.aggregator.webhooks import Sleep, Webhook, Webhooks
from bunq.aggregator.workers import Worker, Workers
from bunq.client import Shards
from bunq.clock import Clock, monotonic_ms, wall_ms
from bunq.errors import BunqError
from bunq.routing import new_job_id, slot_of
from bunq.settings import Settings

log = logging.getLogger("bunq.aggregator")

Publish = Callable[[str, dict[str, Any]], None]


class Registries:
    def __init__(
        self,
        settings: Settings,
        store: RegistryStore,
        shards: Shards,
        publish: Publish,
        *,
        wall: Clock = wall_ms,
        monotonic: Clock = monotonic_ms,
        sleep: Sleep = asyncio.sleep,
        events_dropped: Callable[[], int] = lambda: 0,
        rates: Callable[[], dict[str, float]] = dict,
    ) -> None:
        self.settings = settings
        self.shards = shards
        self.wall = wall
        self.crons = CronTable(store, self.push_cron_job, publish, wall)
        timeout_s = settings.webhook_timeout_ms / 1000
        self.webhooks = Webhooks(store, publish, settings.webhook_allow, timeout_s, sleep=sleep, clock=wall)
        self.workers = Workers(store, publish, settings.worker_timeout_ms, wall)
        self.rate_limiter = RateLimiter(
            settings.rate_limit_window_ms, settings.rate_limit_max, settings.rate_limit_cleanup_ms, monotonic
        )
        self.fronts = FrontConnections(monotonic)
        self.events_dropped = events_dropped  # what the aggregator's socket refused (its server counts)
        self.rates = rates  # throughput over the monitor's last snapshot (its server runs the monitor)

    def topics(self) -> set[str]:
        """The job event topics the webhooks and the worker counts need from the shards."""
        return self.webhooks.topics() | (workers_mod.TOPICS if self.workers.workers else set())

    def on_event(self, topic: str, envelope: dict[str, Any]) -> None:
        self.webhooks.on_event(topic, envelope)
        if topic in workers_mod.TOPICS:
            self.workers.on_event(topic, envelope)

    async def push_cron_job(self, cron: Cron, scheduled: int) -> None:
        slot = slot_of(cron.queue, self.settings.slots)
        job_id = new_job_id(slot, scheduled, fire_seed(cron, scheduled))
        job = p.NewJob(data=cron.data, priority=cron.priority, job_id=job_id, name=cron.name)
        await self.shards.call_queue(cron.queue, p.AddJobs(cron.queue, [job]))

    async def handle(self, command: p.Command) -> p.Reply:
        """Answer one command; its failure is its reply. The aggregator's only catch-all: a bug is logged and
        answered, never left for the front to time out on."""
        handler = HANDLERS.get(type(command))
        if handler is None:
            return p.Error("bad_request", f"Unknown command: {type(command).__name__}")
        try:
            reply: p.Reply = await handler(self, command)
        except BunqError as exc:
            return p.Error(exc.code, exc.message)
        except Exception:
            log.exception("aggregator command %s failed", type(command).__name__)
            return p.Error("internal", "Internal server error")
        return reply

    async def close(self) -> None:
        self.workers.expire()
        await self.webhooks.close()


async def add_cron(reg: Registries, cmd: p.AddCron) -> p.Reply:
    return p.Crons([reg.crons.upsert(Cron(**msgspec.structs.asdict(cmd.spec)))])


async def get_cron(reg: Registries, cmd: p.GetCron) -> p.Reply:
    return p.Crons([reg.crons.get(cmd.name)])


async def list_crons(reg: Registries, cmd: p.ListCrons) -> p.Reply:
    return p.Crons(sorted(reg.crons.crons.values(), key=lambda c: c.name))


async def delete_cron(reg: Registries, cmd: p.DeleteCron) -> p.Reply:
    reg.crons.delete(cmd.name)
    return p.Done()


def _webhooks(hooks: Iterable[Webhook]) -> p.Webhooks:
    return p.Webhooks([p.WebhookEntry(**{f: getattr(h, f) for f in p.WebhookEntry.__struct_fields__}) for h in hooks])


async def add_webhook(reg: Registries, cmd: p.AddWebhook) -> p.Reply:
    return _webhooks([await reg.webhooks.add(cmd.url, cmd.events, cmd.queue, cmd.secret)])


async def list_webhooks(reg: Registries, cmd: p.ListWebhooks) -> p.Reply:
    return _webhooks(reg.webhooks.hooks.values())


async def delete_webhook(reg: Registries, cmd: p.DeleteWebhook) -> p.Reply:
    reg.webhooks.remove(cmd.id)
    return p.Done()


async def set_webhook_enabled(reg: Registries, cmd: p.SetWebhookEnabled) -> p.Reply:
    return _webhooks([reg.webhooks.set_enabled(cmd.id, cmd.enabled)])


def _workers(workers: Iterable[Worker], now: int) -> p.Workers:
    return p.Workers([p.WorkerEntry(**msgspec.structs.asdict(w)) for w in workers], now)


async def register_worker(reg: Registries, cmd: p.RegisterWorker) -> p.Reply:
    worker = reg.workers.register(cmd.name, cmd.queues, cmd.concurrency, cmd.hostname, cmd.pid, cmd.id)
    return _workers([worker], reg.wall())


async def list_workers(reg: Registries, cmd: p.ListWorkers) -> p.Reply:
    return _workers(reg.workers.workers.values(), reg.wall())


async def delete_worker(reg: Registries, cmd: p.DeleteWorker) -> p.Reply:
    reg.workers.remove(cmd.id)
    return p.Done()


async def worker_heartbeat(reg: Registries, cmd: p.WorkerHeartbeat) -> p.Reply:
    return _workers([reg.workers.heartbeat(cmd.id, cmd.active_jobs, cmd.processed, cmd.failed)], reg.wall())


async def check_rate(reg: Registries, cmd: p.CheckRate) -> p.Reply:
    allowed, retry_after = reg.rate_limiter.check(cmd.ip)
    return p.RateVerdict(allowed, retry_after)


async def report_connections(reg: Registries, cmd: p.ReportConnections) -> p.Reply:
    return reg.fronts.report(cmd)


async def ping(reg: Registries, cmd: p.Ping) -> p.Reply:
    return p.Pong(-1, reg.settings.slots)


async def aggregator_stats(reg: Registries, cmd: p.GetAggregatorStats) -> p.Reply:
    hooks = reg.webhooks.hooks.values()
    workers = reg.workers.workers.values()
    return p.AggregatorStats(
        reg.events_dropped(),
        rates=reg.rates(),
        crons=len(reg.crons.crons),
        webhooks=len(hooks),
        webhooks_enabled=sum(1 for hook in hooks if hook.enabled),
        workers=len(workers),
        worker_active_jobs=sum(w.active_jobs for w in workers),
        worker_slots=sum(w.concurrency for w in workers),
        workers_processed=sum(w.processed_jobs for w in workers),
        workers_failed=sum(w.failed_jobs for w in workers),
        connections=reg.fronts.totals(),
    )


HANDLERS: dict[type[p.Command], Callable[[Registries, Any], Awaitable[p.Reply]]] = {
    p.AddCron: add_cron,
    p.GetCron: get_cron,
    p.ListCrons: list_crons,
    p.DeleteCron: delete_cron,
    p.AddWebhook: add_webhook,
    p.ListWebhooks: list_webhooks,
    p.DeleteWebhook: delete_webhook,
    p.SetWebhookEnabled: set_webhook_enabled,
    p.RegisterWorker: register_worker,
    p.ListWorkers: list_workers,
    p.DeleteWorker: delete_worker,
    p.WorkerHeartbeat: worker_heartbeat,
    p.Ping: ping,
    p.GetAggregatorStats: aggregator_stats,
    p.CheckRate: check_rate,
    p.ReportConnections: report_connections,
}
