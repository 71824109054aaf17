"""The front's event hub against a stand-in aggregator XPUB: the subscription barrier and retopic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable

import msgspec
import pytest
import zmq
import zmq.asyncio

from bunq import events as hub_mod
from bunq import wire
from bunq.catalogue import SYNC_AGGREGATOR
from bunq.events import EventHub, Listener

ENDPOINT = "inproc://events"


class Upstream:
    """Plays the aggregator and the shards: records every subscription message the hub sends, and
    answers a barrier for the sources given."""

    def __init__(self, ctx: zmq.asyncio.Context, sources: Iterable[int]) -> None:
        self.xpub = ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscribe, duplicates included
        self.xpub.bind(ENDPOINT)
        self.sources = list(sources)
        self.seen: list[bytes] = []

    async def serve(self) -> None:
        while True:
            message = await self.xpub.recv()
            self.seen.append(message)
            if message.startswith(b"\x01sync:"):
                for source in self.sources:
                    await self.publish(message[1:].decode(), {"shard": source})

    async def publish(self, name: str, data: dict[str, object]) -> None:
        envelope = msgspec.json.encode({"event": name, "ts": 1, "data": data})
        await self.xpub.send_multipart([name.encode(), wire.envelope_item(envelope)])


@contextlib.asynccontextmanager
async def running(sources: Iterable[int], shards: int = 2) -> AsyncIterator[tuple[EventHub, Upstream]]:
    ctx = zmq.asyncio.Context()
    upstream = Upstream(ctx, sources)
    hub = EventHub(ctx, ENDPOINT, shards)
    hub.start()
    server = asyncio.create_task(upstream.serve())
    try:
        async with asyncio.timeout(10):
            yield hub, upstream
    finally:
        server.cancel()
        hub.close()
        upstream.xpub.close(linger=0)
        ctx.term()


def test_sync_waits_for_the_aggregator_and_every_shard() -> None:
    async def main() -> None:
        async with running([SYNC_AGGREGATOR, 0, 1]) as (hub, upstream):
            hub.add(Listener(("queue:paused",)))
            await hub.sync()
            sync_topic = next(m for m in upstream.seen if m.startswith(b"\x01sync:"))
            assert upstream.seen.index(b"\x01queue:paused") < upstream.seen.index(sync_topic)
            assert not hub.barriers

    asyncio.run(main())


def test_sync_gives_up_on_a_silent_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_mod, "SYNC_TIMEOUT_S", 0.2)

    async def main() -> None:
        async with running([SYNC_AGGREGATOR, 0]) as (hub, upstream):  # shard 1 never answers
            started = time.monotonic()
            await hub.sync()
            assert time.monotonic() - started >= 0.2
            assert not hub.barriers
            for _ in range(100):  # the barrier's topic is let go
                if any(m.startswith(b"\x00sync:") for m in upstream.seen):
                    break
                await asyncio.sleep(0.01)
            assert any(m.startswith(b"\x00sync:") for m in upstream.seen)

    asyncio.run(main())


def test_barrier_answers_never_reach_a_listener_of_everything() -> None:
    async def main() -> None:
        async with running([SYNC_AGGREGATOR, 0, 1]) as (hub, upstream):
            everything = Listener(("",), legacy=False)
            hub.add(everything)
            await hub.sync()
            await upstream.publish("sync:" + "0" * 32, {"shard": 0})  # another front's barrier
            await upstream.publish("queue:paused", {"queue": "q"})
            event = await everything.inbox.get()
            assert event is not None and event.name == "queue:paused"
            assert everything.inbox.empty()

    asyncio.run(main())


def test_retopic_keeps_the_topics_a_listener_still_wants() -> None:
    async def main() -> None:
        async with running([SYNC_AGGREGATOR, 0, 1]) as (hub, upstream):
            listener = Listener(("job:",))
            hub.add(listener)
            await hub.sync()
            upstream.seen.clear()
            hub.retopic(listener, ("job:", "queue:paused"))
            await hub.sync()
            changes = [m for m in upstream.seen if b"sync:" not in m]
            assert changes == [b"\x01queue:paused"]  # job: was never let go, not even for a moment
            hub.retopic(listener, ())
            hub.retopic(listener, ("job:",))
            await hub.sync()
            assert hub.topics == {"job:": 1} and listener in hub.listeners

    asyncio.run(main())


def test_a_run_of_events_in_one_message_reaches_a_listener_one_by_one_in_order() -> None:
    async def main() -> None:
        async with running([SYNC_AGGREGATOR, 0, 1]) as (hub, upstream):
            listener = Listener(("job:",), queue="q", legacy=False)
            hub.add(listener)
            await hub.sync()
            envelopes = [
                msgspec.json.encode({"event": "job:active", "ts": 1, "data": {"queue": queue, "jobId": job}})
                for queue, job in [("q", "a"), ("other", "x"), ("q", "b")]
            ]
            await upstream.xpub.send_multipart([b"job:active", b"".join(map(wire.envelope_item, envelopes))])
            got = [await listener.inbox.get() for _ in range(2)]
            assert [e.envelope["data"]["jobId"] for e in got if e is not None] == ["a", "b"]
            assert listener.inbox.empty()

    asyncio.run(main())


def test_a_buffered_event_is_sent_as_the_client_wants_it_now() -> None:
    """A WebSocket client's job events are buffered in the legacy form until its Subscribe takes effect;
    one still buffered when the Subscribe narrows the topics is not sent as an envelope the client did not
    subscribe to (a client of `job:completed` saw a `job:active` in CI before this)."""
    envelope = {"event": "job:active", "ts": 1, "data": {"queue": "q", "jobId": "j"}}
    active = hub_mod.Event("job:active", envelope, msgspec.json.encode(envelope))
    completed_envelope = {**envelope, "event": "job:completed"}
    completed = hub_mod.Event("job:completed", completed_envelope, msgspec.json.encode(completed_envelope))
    listener = Listener(("job:",))
    assert msgspec.json.decode(listener.frame(active) or b"") == {
        "eventType": "pulled",  # the reference's legacy name of `job:active`
        "queue": "q",
        "jobId": "j",
        "timestamp": 1,
    }
    listener.legacy, listener.topics = False, ("job:completed",)
    assert listener.frame(active) is None
    assert listener.frame(completed) == completed.raw
    listener.topics = ("",)  # `*`
    assert listener.frame(active) == active.raw
    listener.topics = ()  # unsubscribed from everything
    assert listener.frame(completed) is None
