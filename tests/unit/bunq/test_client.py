"""The front's shard client against a stand-in shard ROUTER: what its calls get when the shard goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from bunq import wire
from bunq.client import ShardClient, expect
from bunq.errors import NotFound, Unavailable
from bunq.protocol import Error, Ids, Ping, Pong, Reply
from bunq.settings import Settings


class StandInShard:
    """A shard's ROUTER in its own context: closing it closes the client's connection, as a dead process does."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.asyncio.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.bind(endpoint)

    async def receive(self) -> tuple[bytes, list[bytes]]:
        identity, frame = await self.router.recv_multipart()
        return identity, [rid for rid, _ in wire.split(frame)]

    async def answer(self, identity: bytes, rid: bytes) -> None:
        await self.router.send_multipart([identity, wire.item(rid, Pong(shard=0, slots=256))])

    def die(self) -> None:
        self.router.close(linger=1000)  # what was sent still leaves, then the connection closes
        self.ctx.term()


@contextlib.asynccontextmanager
async def connected(tmp_path: Path) -> AsyncIterator[tuple[ShardClient, str]]:
    settings = Settings.from_env({"BUNQ_SHARDS": "1", "BUNQ_RUN_DIR": str(tmp_path)})
    assert settings.request_timeout_ms == 10_000
    client = ShardClient(settings)
    await client.start()
    try:
        async with asyncio.timeout(5):  # half the request timeout: a call left to its deadline fails the test
            yield client, settings.shard_endpoints[0]
    finally:
        await client.close()


def test_calls_sent_to_a_shard_that_goes_away_are_answered_503_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with connected(tmp_path) as (client, endpoint):
            shard = StandInShard(endpoint)
            answered = asyncio.ensure_future(client.call_raw(0, Ping()))
            parked = asyncio.ensure_future(client.call_raw(0, Ping(), extra_wait_ms=60_000))  # like a long poll
            identity, rids = await shard.receive()
            while len(rids) < 2:
                rids += (await shard.receive())[1]
            await shard.answer(identity, rids[0])
            shard.die()
            assert await answered == Pong(shard=0, slots=256)  # a reply that came is never turned into a 503
            with pytest.raises(Unavailable, match="^Shard 0 went down; the outcome of this request is unknown$"):
                await parked

    asyncio.run(main())


def test_a_call_made_while_the_shard_is_down_reaches_the_restarted_one(tmp_path: Path) -> None:
    async def main() -> None:
        async with connected(tmp_path) as (client, endpoint):
            first = StandInShard(endpoint)
            lost = asyncio.ensure_future(client.call_raw(0, Ping()))
            await first.receive()
            first.die()
            with pytest.raises(Unavailable):
                await lost
            waiting = asyncio.ensure_future(client.call_raw(0, Ping()))
            await asyncio.sleep(0.05)  # sent into the void: nothing listens on the endpoint yet
            restarted = StandInShard(endpoint)
            identity, rids = await restarted.receive()
            await restarted.answer(identity, rids[0])
            assert await waiting == Pong(shard=0, slots=256)
            restarted.die()

    asyncio.run(main())


def test_a_typed_call_returns_the_reply_it_names_and_raises_the_rest() -> None:
    ids = Ids(["a"])
    assert expect(ids, Ids) is ids
    assert expect(ids, Reply) is ids
    with pytest.raises(NotFound, match="Job not found"):
        expect(Error("not_found", "Job not found"), Reply)
    with pytest.raises(TypeError, match="Pong reply where Ids was expected"):
        expect(Pong(0, 256), Ids)
