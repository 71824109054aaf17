"""The aggregator process (asyncio): event forwarding shards → fronts, subscriptions back upstream, and
the registries' commands (`bunq.aggregator.core`) on a ROUTER socket the fronts call."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from bunq import protocol as p
from bunq import wire
from bunq.aggregator.core import Registries
from bunq.aggregator.monitor import Monitor
from bunq.aggregator.store import RegistryStore
from bunq.catalogue import SYNC, SYNC_AGGREGATOR
from bunq.client import ShardClient
from bunq.clock import wall_ms
from bunq.procinfo import SHUTDOWN_COMING
from bunq.settings import Settings

log = logging.getLogger("bunq.aggregator")

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder().decode
_SYNC = SYNC.encode()
FORWARD_BATCH = 1000  # events forwarded before other tasks get a turn


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
        self.events_dropped = 0  # events published or forwarded here that the socket refused (zmq.Again)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.bind(settings.aggregator_endpoint)
        for sock in (self.xsub, self.xpub, self.router):
            sock.setsockopt(zmq.LINGER, 0)
        self.store = RegistryStore(os.path.join(settings.data_dir, "aggregator.db"))
        self.shards = ShardClient(settings)
        self.registries = Registries(
            settings,
            self.store,
            self.shards,
            self.publish,
            events_dropped=lambda: self.events_dropped,
            rates=lambda: self.monitor.rates,
        )
        reg = self.registries
        self.monitor = Monitor(self.shards, reg.workers, reg.crons, self.publish, settings.thresholds, reg.fronts)
        self.own_topics: set[str] = set()
        self.stopping = asyncio.Event()
        self.announced = False
        self.answering: set[asyncio.Task[None]] = set()  # commands being answered, held until they finish

    # ---- events ---------------------------------------------------------------------------------

    def publish(self, name: str, data: dict[str, Any]) -> None:
        envelope = _json.encode({"event": name, "ts": wall_ms(), "data": data})
        try:
            self.xpub.send_multipart([name.encode(), wire.envelope_item(envelope)], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.events_dropped += 1
            log.debug("event %s dropped: the event socket refused it (%d dropped)", name, self.events_dropped)

    async def forward_events(self) -> None:
        """Every event that has arrived, forwarded in one synchronous pass per wake-up: the asyncio wrappers'
        cost per message (a future for each receive and send) was most of this process's time under load."""
        xsub: zmq.Socket[bytes] = zmq.Socket.shadow(self.xsub.underlying)
        xpub: zmq.Socket[bytes] = zmq.Socket.shadow(self.xpub.underlying)
        while True:
            await self.xsub.poll()
            for n in range(FORWARD_BATCH):
                if n and not wire.readable(xsub):
                    break
                try:
                    frames = xsub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.forward(xpub, frames)

    def forward(self, xpub: zmq.Socket[bytes], frames: list[bytes]) -> None:
        try:
            xpub.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.events_dropped += 1
            log.debug("a shard's event dropped: the event socket refused it (%d dropped)", self.events_dropped)
        topic = frames[0].decode()
        if topic in self.own_topics and len(frames) > 1:
            for envelope in wire.envelopes(frames[1]):  # a shard's run of events of one name
                self.registries.on_event(topic, _decode(envelope))

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
        wanted = self.registries.topics()
        for topic in wanted - self.own_topics:
            await self.xsub.send(b"\x01" + topic.encode())
        for topic in self.own_topics - wanted:
            await self.xsub.send(b"\x00" + topic.encode())
        self.own_topics = wanted

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
        except msgspec.DecodeError:
            reply: p.Reply = p.Error("bad_request", "Malformed command")
        else:
            reply = await self.registries.handle(command)
            if self.registries.topics() != self.own_topics:
                await self.sync_own_topics()
        await self.router.send_multipart([identity, wire.item(rid, reply)])

    # ---- lifecycle ------------------------------------------------------------------------------

    async def expire_workers(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.registries.workers.expire()
            await self.sync_own_topics()

    def announce_shutdown(self) -> None:
        """`server:shutdown`, once: on SIGUSR1, which `bunq serve` sends before it stops the fronts (so
        that their clients receive it), or else when the aggregator itself stops."""
        if not self.announced:
            self.announced = True
            self.publish("server:shutdown", {"reason": "signal"})

    async def run(self) -> None:
        await self.shards.start()
        await self.sync_own_topics()
        tasks = [
            asyncio.create_task(coro)
            for coro in (
                self.forward_events(),
                self.forward_subscriptions(),
                self.serve_commands(),
                self.registries.crons.run(),
                self.expire_workers(),
                self.monitor.run(),
            )
        ]
        await asyncio.sleep(0.2)  # let subscribers connect before the first event
        self.monitor.started_event()
        await self.stopping.wait()
        self.announce_shutdown()
        await asyncio.sleep(0.05)
        for task in (*tasks, *self.answering):
            task.cancel()
        outcomes = await asyncio.gather(*tasks, *self.answering, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("aggregator task failed", exc_info=outcome)
        await self.registries.close()
        await self.shards.close()
        self.store.close()
        for sock in (self.xsub, self.xpub, self.router):
            sock.close()
        self.ctx.term()


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s aggregator %(message)s")

    async def run() -> None:
        aggregator = Aggregator(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, aggregator.stopping.set)
        loop.add_signal_handler(SHUTDOWN_COMING, aggregator.announce_shutdown)
        await aggregator.run()

    asyncio.run(run())
