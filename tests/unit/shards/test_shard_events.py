"""The shard's Publisher: a `sync:` subscription is answered at once and is never a wish; events of one name
in a row travel as one message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import msgspec
import pytest
import zmq

from bunq import wire
from shards.events import Publisher
from tests.support.engines import Recorder


@contextlib.contextmanager
def wired(shard: int, *topics: bytes) -> Iterator[tuple[Publisher, zmq.Socket[bytes]]]:
    """A Publisher on an XPUB with a SUB subscribed to `topics`, each subscription already seen by the
    publisher; yields (publisher, sub)."""
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    sub = ctx.socket(zmq.SUB)
    try:
        xpub.bind("inproc://shard-events")
        sub.connect("inproc://shard-events")
        publisher = Publisher(xpub, shard)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        for _ in topics:
            assert xpub.poll(5000)
            publisher.on_subscription(xpub.recv())
        yield publisher, sub
    finally:
        sub.close(linger=0)
        xpub.close(linger=0)
        ctx.term()


def test_a_barrier_is_answered_with_the_shard_index_and_not_counted_as_wanted() -> None:
    with wired(3, b"queue:paused", b"sync:abc") as (publisher, sub):
        assert sub.poll(5000)
        topic, payload = sub.recv_multipart()
        (envelope,) = wire.envelopes(payload)
        assert topic == b"sync:abc" and msgspec.json.decode(envelope)["data"] == {"shard": 3}
        assert list(publisher.prefixes) == [b"queue:paused"]
        assert publisher.wants("queue:paused") and not publisher.wants("sync:abc")
        publisher.on_subscription(b"\x00sync:abc")
        assert list(publisher.prefixes) == [b"queue:paused"]
        assert not sub.poll(50)  # the unsubscribe of a barrier is not answered


def test_events_of_one_name_in_a_row_travel_as_one_message_in_order() -> None:
    with wired(0, b"job:") as (publisher, sub):
        for name, job in [("job:active", "a"), ("job:active", "b"), ("job:completed", "a"), ("job:active", "c")]:
            publisher.publish(name, {"jobId": job})
        publisher.flush()
        messages = []
        while sub.poll(200):
            topic, payload = sub.recv_multipart()
            messages.append((topic, [msgspec.json.decode(e)["data"]["jobId"] for e in wire.envelopes(payload)]))
        assert messages == [(b"job:active", ["a", "b"]), (b"job:completed", ["a"]), (b"job:active", ["c"])]
        publisher.flush()
        assert not sub.poll(50), "a flush with nothing held sent something"


def test_the_worker_tally_goes_out_at_most_every_interval_with_everything_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shards import emitter as emitter_module

    now = [100.0]
    monkeypatch.setattr(emitter_module.time, "monotonic", lambda: now[0])
    sink = Recorder()
    emitter = emitter_module.Emitter(sink)
    emitter.count("w", "a", 0)
    emitter.publish_tally()  # the first goes at once
    for turn, job in enumerate("bcd"):
        now[0] += 0.01
        emitter.count("w", job, 0)
        emitter.count("w", "a" if turn == 0 else job, 1)
        emitter.publish_tally()  # within the interval: held, and added up
    now[0] += emitter_module.TALLY_EVERY_S
    emitter.publish_tally()
    emitter.publish_tally()  # nothing new: nothing sent
    assert [data["workers"] for _, data in sink.events] == [{"w": [1, 0, 0, "a"]}, {"w": [3, 3, 0, None]}]
