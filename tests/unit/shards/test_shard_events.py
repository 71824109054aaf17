"""The shard's Publisher: a `sync:` subscription is answered at once and is never a wish."""

from __future__ import annotations

import msgspec
import zmq

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
        assert topic == b"sync:abc" and msgspec.json.decode(payload)["data"] == {"shard": 3}
        assert list(publisher.prefixes) == [b"queue:paused"]
        assert publisher.wants("queue:paused") and not publisher.wants("sync:abc")
        publisher.on_subscription(b"\x00sync:abc")
        assert list(publisher.prefixes) == [b"queue:paused"]
        assert not sub.poll(50)  # the unsubscribe of a barrier is not answered
    finally:
        sub.close(linger=0)
        xpub.close(linger=0)
        ctx.term()
