"""`Shards` with everything behind the front in this process: the shard engines and the aggregator's
registries on one fake clock, storage in real SQLite files, no sockets. Nothing moves in time until
`advance`: a TTL, a grace period, a lock, a cron or a worker's silence is a clock step, not a sleep.

Calls run the engine at once; cross-shard messages are delivered, due timers run and the journal is
committed before the call returns, so every reply the front sees is as durable as over ZeroMQ.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec

from bunq.aggregator.core import Registries
from bunq.aggregator.store import RegistryStore
from bunq.client import Shards
from bunq.errors import Unavailable
from bunq.protocol import Command, Reply
from bunq.settings import Settings
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import make_engine


async def _no_wait(seconds: float) -> None:
    """A webhook's retry delay: a retry comes at once (the clock is the test's)."""
    await asyncio.sleep(0)


class InProcessShards(Shards):
    dropped = 0  # as the shards' event sink: nothing is dropped in-process

    def __init__(self, settings: Settings, root: Path, clock: FakeClock) -> None:
        super().__init__(settings, with_aggregator=True)
        self.clock = clock
        self.topics: set[str] = set()  # the job events the registries take, as over XPUB subscriptions
        self.engines: list[Engine] = [
            make_engine(root / f"shard-{i}.db", clock, shard=i, shards=self.shards, slots=self.slots, events=self)
            for i in range(self.shards)
        ]
        for engine in self.engines:
            engine.emitter.tally_every_s = 0.0  # every turn: this harness's turns are its calls, its time is fake
        self.store = RegistryStore(str(root / "aggregator.db"))
        self.published: list[tuple[str, dict[str, Any]]] = []  # the aggregator's own events, in order
        self.registries = Registries(
            settings, self.store, self, self.publish, wall=clock, monotonic=clock, sleep=_no_wait
        )

    # ---- the shards' event sink and the aggregator's publisher ----------------------------------

    def wants(self, name: str) -> bool:
        return name in self.topics

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """A shard's job event for the registries (JSON round trip, as over the wire), or the aggregator's own."""
        envelope = msgspec.json.decode(msgspec.json.encode({"event": name, "ts": self.clock(), "data": data}))
        if name in self.topics:
            self.registries.on_event(name, envelope)
        else:
            self.published.append((name, envelope["data"]))

    # ---- Shards ---------------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.settle()
        await self.registries.close()
        self.store.close()

    async def call_raw(self, shard: int, command: Command, *, extra_wait_ms: int = 0) -> Reply:
        if shard == self.shards:
            reply = await self.registries.handle(command)
            self.topics = self.registries.topics()
            return reply
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def respond(reply: Reply) -> None:
            if not future.done():
                future.set_result(reply)

        self.engines[shard].handle(command, respond)
        self.settle()
        try:
            return await asyncio.wait_for(future, self.timeout_s + extra_wait_ms / 1000)
        except TimeoutError:
            raise Unavailable(f"Shard {shard} did not answer in time") from None

    # ---- time -----------------------------------------------------------------------------------

    def settle(self) -> None:
        """Run what is due now: timers, shard-to-shard messages, commits (and the replies waiting for them)."""
        while True:
            for engine in self.engines:
                engine.tick()
                engine.publish_counts()  # as a shard's loop does each turn: queue:counts and the worker tally
                if engine.journal.pending() or engine.after_commit:
                    engine.flush()
            if not any(engine.outgoing for engine in self.engines):
                return
            for engine in self.engines:
                outgoing, engine.outgoing = engine.outgoing, []
                for shard, command, on_reply in outgoing:
                    self.engines[shard].handle(command, on_reply)

    async def advance(self, ms: int) -> None:
        """Move the clock, then run what came due on the shards and in the aggregator (crons, worker expiry)."""
        self.clock.advance(ms)
        self.settle()
        await self.registries.crons.fire_due()
        self.registries.workers.expire()
        self.topics = self.registries.topics()
        self.settle()

    def parked(self) -> int:
        """Calls the shards hold open: long-poll pulls and waits for a job to finish."""
        pulls = sum(not w.done for e in self.engines for q in e.queues.values() for w in q.waiters)
        waits = sum(len(w) for e in self.engines for w in e.job_waiters.by_job.values())
        return pulls + waits
