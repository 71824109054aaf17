"""The aggregator process (asyncio): event forwarding shards → fronts, subscriptions back upstream, and
the registries' commands (crons, webhooks, workers) on a ROUTER socket the fronts call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from bunq import protocol as p
from bunq import wire
from bunq.aggregator import workers as workers_mod
from bunq.aggregator.crons import Cron, CronTable, fire_seed
from bunq.aggregator.fronts import FrontConnections
from bunq.aggregator.monitor import Monitor
from bunq.aggregator.ratelimit import RateLimiter
from bunq.aggregator.store import RegistryStore
from bunq.aggregator.webhooks import Webhook, Webhooks
from bunq.aggregator.workers import Worker, Workers
from bunq.catalogue import SYNC, SYNC_AGGREGATOR
from bunq.client import ShardClient
from bunq.errors import BunqError
from bunq.routing import new_job_id, slot_of
from bunq.settings import Settings

log = logging.getLogger("bunq.aggregator")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder().decode
_SYNC = SYNC.encode()


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Aggregator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = zmq.asyncio.Context()
        for d in settings.ipc_dirs():
            os.makedirs(d, exist_ok=True)
        self.xsub = self.ctx.socket(zmq.XSUB)
        for endpoint in settings.shard_event_endpoints:
            self.xsub.connect(endpoint)
        self.xpub = self.ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.SNDHWM, 100_000)
        self.xpub.bind(settings.events_endpoint)
        self.events_dropped = 0  # of the events this process publishes, those the socket refused (zmq.Again)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.bind(settings.aggregator_endpoint)
        for sock in (self.xsub, self.xpub, self.router):
            sock.setsockopt(zmq.LINGER, 0)
        self.store = RegistryStore(os.path.join(settings.data_dir, "aggregator.db"))
        self.shards = ShardClient(settings)
        self.crons = CronTable(self.store, self.push_cron_job, self.publish, wall_ms)
        self.webhooks = Webhooks(self.store, self.publish, settings.webhook_allow, settings.webhook_timeout_ms / 1000)
        self.workers = Workers(self.store, self.publish, settings.worker_timeout_ms)
        self.rate_limiter = RateLimiter(
            settings.rate_limit_window_ms, settings.rate_limit_max, settings.rate_limit_cleanup_ms, monotonic_ms
        )
        self.fronts = FrontConnections(monotonic_ms)
        self.monitor = Monitor(self.shards, self.workers, self.crons, self.publish, settings.thresholds, self.fronts)
        self.own_topics: set[str] = set()
        self.stopping = asyncio.Event()
        self.answering: set[asyncio.Task[None]] = set()  # commands being answered, held until they finish

    # ---- events ---------------------------------------------------------------------------------

    def publish(self, name: str, data: dict[str, Any]) -> None:
        envelope = _json.encode({"event": name, "ts": wall_ms(), "data": data})
        try:
            self.xpub.send_multipart([name.encode(), envelope], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.events_dropped += 1
            log.debug("event %s dropped: the event socket refused it (%d dropped)", name, self.events_dropped)

    async def forward_events(self) -> None:
        while True:
            frames = await self.xsub.recv_multipart()
            with contextlib.suppress(zmq.Again):
                await self.xpub.send_multipart(frames, flags=zmq.NOBLOCK)
            topic = frames[0].decode()
            if topic in self.own_topics and len(frames) > 1:
                envelope = _decode(frames[1])
                self.webhooks.on_event(topic, envelope)
                if topic in workers_mod.TOPICS:
                    self.workers.on_event(topic, envelope)

    async def forward_subscriptions(self) -> None:
        """Subscriptions up to the shards, in the order they came. A front's barrier (`sync:` topic) goes
        up like any other and is also answered here at once: this XPUB holds, by now, every subscription
        that front set before it, so the aggregator's own events to it flow from here on."""
        while True:
            message = await self.xpub.recv()
            await self.xsub.send(message)
            if message[:1] == b"\x01" and message.startswith(_SYNC, 1):
                self.publish(message[1:].decode(), {"shard": SYNC_AGGREGATOR})

    async def sync_own_topics(self) -> None:
        """Subscribe upstream to exactly the job events the webhooks and the worker counts need."""
        wanted = self.webhooks.topics() | (workers_mod.TOPICS if self.workers.workers else set())
        for topic in wanted - self.own_topics:
            await self.xsub.send(b"\x01" + topic.encode())
        for topic in self.own_topics - wanted:
            await self.xsub.send(b"\x00" + topic.encode())
        self.own_topics = wanted

    # ---- crons ----------------------------------------------------------------------------------

    async def push_cron_job(self, cron: Cron, scheduled: int) -> None:
        slot = slot_of(cron.queue, self.settings.slots)
        job_id = new_job_id(slot, scheduled, fire_seed(cron, scheduled))
        job = p.NewJob(data=cron.data, priority=cron.priority, job_id=job_id, name=cron.name)
        await self.shards.call_queue(cron.queue, p.AddJobs(cron.queue, [job]))

    # ---- commands -------------------------------------------------------------------------------

    async def serve_commands(self) -> None:
        while True:
            identity, frame = await self.router.recv_multipart()
            for rid, payload in wire.split(frame):
                task = asyncio.create_task(self.answer(identity, rid, payload))
                self.answering.add(task)
                task.add_done_callback(self.answering.discard)

    async def answer(self, identity: bytes, rid: bytes, payload: memoryview) -> None:
        try:
            command = wire.decode_aggregator_command(payload)
            reply = await self.handle(command)
        except BunqError as exc:
            reply = p.Error(exc.code, exc.message)
        except Exception:
            log.exception("aggregator command failed")
            reply = p.Error("internal", "Internal server error")
        await self.router.send_multipart([identity, wire.item(rid, reply)])

    async def handle(self, command: p.Command) -> p.Reply:
        handler = HANDLERS.get(type(command))
        if handler is None:
            return p.Error("bad_request", f"Unknown command: {type(command).__name__}")
        reply: p.Reply = await handler(self, command)
        if isinstance(command, CHANGES_SUBSCRIPTIONS):
            await self.sync_own_topics()
        return reply

    # ---- lifecycle ------------------------------------------------------------------------------

    async def expire_workers(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.workers.expire()
            await self.sync_own_topics()

    async def run(self) -> None:
        await self.shards.start()
        await self.sync_own_topics()
        tasks = [
            asyncio.create_task(coro)
            for coro in (
                self.forward_events(),
                self.forward_subscriptions(),
                self.serve_commands(),
                self.crons.run(),
                self.expire_workers(),
                self.monitor.run(),
            )
        ]
        await asyncio.sleep(0.2)  # let subscribers connect before the first event
        self.monitor.started_event()
        await self.stopping.wait()
        self.publish("server:shutdown", {"reason": "signal"})
        await asyncio.sleep(0.05)
        for task in (*tasks, *self.answering):
            task.cancel()
        outcomes = await asyncio.gather(*tasks, *self.answering, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("aggregator task failed", exc_info=outcome)
        self.workers.expire()
        await self.webhooks.close()
        await self.shards.close()
        self.store.close()
        for sock in (self.xsub, self.xpub, self.router):
            sock.close()
        self.ctx.term()


CHANGES_SUBSCRIPTIONS = (p.AddWebhook, p.DeleteWebhook, p.SetWebhookEnabled, p.RegisterWorker, p.DeleteWorker)


async def add_cron(agg: Aggregator, cmd: p.AddCron) -> p.Reply:
    return p.Crons([agg.crons.upsert(Cron(**msgspec.structs.asdict(cmd.spec)))])


async def get_cron(agg: Aggregator, cmd: p.GetCron) -> p.Reply:
    return p.Crons([agg.crons.get(cmd.name)])


async def list_crons(agg: Aggregator, cmd: p.ListCrons) -> p.Reply:
    return p.Crons(sorted(agg.crons.crons.values(), key=lambda c: c.name))


async def delete_cron(agg: Aggregator, cmd: p.DeleteCron) -> p.Reply:
    agg.crons.delete(cmd.name)
    return p.Done()


def _webhooks(hooks: Iterable[Webhook]) -> p.Webhooks:
    return p.Webhooks([p.WebhookEntry(**{f: getattr(h, f) for f in p.WebhookEntry.__struct_fields__}) for h in hooks])


async def add_webhook(agg: Aggregator, cmd: p.AddWebhook) -> p.Reply:
    return _webhooks([await agg.webhooks.add(cmd.url, cmd.events, cmd.queue, cmd.secret)])


async def list_webhooks(agg: Aggregator, cmd: p.ListWebhooks) -> p.Reply:
    return _webhooks(agg.webhooks.hooks.values())


async def delete_webhook(agg: Aggregator, cmd: p.DeleteWebhook) -> p.Reply:
    agg.webhooks.remove(cmd.id)
    return p.Done()


async def set_webhook_enabled(agg: Aggregator, cmd: p.SetWebhookEnabled) -> p.Reply:
    return _webhooks([agg.webhooks.set_enabled(cmd.id, cmd.enabled)])


def _workers(workers: Iterable[Worker], now: int) -> p.Workers:
    return p.Workers([p.WorkerEntry(**msgspec.structs.asdict(w)) for w in workers], now)


async def register_worker(agg: Aggregator, cmd: p.RegisterWorker) -> p.Reply:
    worker = agg.workers.register(cmd.name, cmd.queues, cmd.concurrency, cmd.hostname, cmd.pid)
    return _workers([worker], wall_ms())


async def list_workers(agg: Aggregator, cmd: p.ListWorkers) -> p.Reply:
    return _workers(agg.workers.workers.values(), wall_ms())


async def delete_worker(agg: Aggregator, cmd: p.DeleteWorker) -> p.Reply:
    agg.workers.remove(cmd.id)
    return p.Done()


async def worker_heartbeat(agg: Aggregator, cmd: p.WorkerHeartbeat) -> p.Reply:
    return _workers([agg.workers.heartbeat(cmd.id)], wall_ms())


async def check_rate(agg: Aggregator, cmd: p.CheckRate) -> p.Reply:
    allowed, retry_after = agg.rate_limiter.check(cmd.ip)
    return p.RateVerdict(allowed, retry_after)


async def report_connections(agg: Aggregator, cmd: p.ReportConnections) -> p.Reply:
    return agg.fronts.report(cmd)


async def ping(agg: Aggregator, cmd: p.Ping) -> p.Reply:
    return p.Pong(-1, agg.settings.slots)


HANDLERS: dict[type[p.Command], Any] = {
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
    p.CheckRate: check_rate,
    p.ReportConnections: report_connections,
}


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s aggregator %(message)s")

    async def run() -> None:
        aggregator = Aggregator(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, aggregator.stopping.set)
        await aggregator.run()

    asyncio.run(run())
