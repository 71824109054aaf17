"""The shard's Publisher: a `sync:` subscription is answered at once and is never a wish."""

from __future__ import annotations

import msgspec
import zmq

from bunq import wire
from shards.events import Publisher


def test_a_barrier_is_answered_with_the_shard_index_and_not_counted_as_wanted() -> None:
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    sub = ctx.socket(zmq.SUB)
    try:
        xpub.bind("inproc://shard-events")
        sub.connect("inproc://shard-events")
        publisher = Publisher(xpub, 3)
        sub.setsockopt(zmq.SUBSCRIBE, b"queue:paused")
        sub.setsockopt(zmq.SUBSCRIBE, b"sync:abc")
        for _ in range(2):
            assert xpub.poll(5000)
            publisher.on_subscription(xpub.recv())
        assert sub.poll(5000)
        topic, payload = sub.recv_multipart()
        (envelope,) = wire.envelopes(payload)
        assert topic == b"sync:abc" and msgspec.json.decode(envelope)["data"] == {"shard": 3}
        assert list(publisher.prefixes) == [b"queue:paused"]
        assert publisher.wants("queue:paused") and not publisher.wants("sync:abc")
        publisher.on_subscription(b"\x00sync:abc")
        assert list(publisher.prefixes) == [b"queue:paused"]
        assert not sub.poll(50)  # the unsubscribe of a barrier is not answered
    finally:
        sub.close(linger=0)
        xpub.close(linger=0)
        ctx.term()


def test_events_of_one_name_in_a_row_travel_as_one_message_in_order() -> None:
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    sub = ctx.socket(zmq.SUB)
    try:
        xpub.bind("inproc://shard-runs")
        sub.connect("inproc://shard-runs")
        publisher = Publisher(xpub, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"job:")
        assert xpub.poll(5000)
        publisher.on_subscription(xpub.recv())
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
    finally:
        sub.close(linger=0)
        xpub.close(linger=0)
        ctx.term()
