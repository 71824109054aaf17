"""A shard's event publisher: an XPUB socket that knows which event names anyone subscribed to."""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
import zmq

from bunq.catalogue import SYNC
from bunq.wire import envelope_item

log = logging.getLogger("bunq.shard")
_json = msgspec.json.Encoder()
_SYNC = SYNC.encode()
MAX_RUN = 1000  # events in one message at most


class Publisher:
    """Builds and sends an event only when some subscriber's prefix matches its name.

    Subscriptions arrive upstream from the aggregator (XPUB/XSUB), so with nobody listening
    `wants()` is one dict lookup and no event is ever built. A subscription to a `sync:` topic is a
    front's barrier, not a wish: it is answered at once on that topic, and the subscriptions that came
    before it on the same pipe are in force by then.

    Events of the same name in a row travel as one message (`bunq.wire`: the name, then the envelopes), sent when
    the name changes or at the end of the loop's turn (`flush`): a pull of 100 jobs is one `job:active`
    message, not 100, for this socket, the aggregator and every front's hub alike. Order is kept, and a
    subscription still matches the first frame, the name.
    """

    def __init__(self, socket: zmq.Socket[bytes], shard: int) -> None:
        self.socket = socket
        self.shard = shard
        self.prefixes: dict[bytes, int] = {}
        self._wanted: dict[str, bool] = {}
        self.dropped = 0  # events the socket refused (zmq.Again)
        self._name = ""
        self._pending: list[bytes] = []  # the envelopes of a run of events named `_name`, framed

    def on_subscription(self, message: bytes) -> None:
        if not message:
            return
        prefix = message[1:]
        if prefix.startswith(_SYNC):
            if message[0] == 1:
                self.publish(prefix.decode(), {"shard": self.shard})
                self.flush()  # at once: the barrier's answer follows every event before it
            return
        if message[0] == 1:
            self.prefixes[prefix] = self.prefixes.get(prefix, 0) + 1
        elif message[0] == 0 and prefix in self.prefixes:
            self.prefixes[prefix] -= 1
            if self.prefixes[prefix] <= 0:
                del self.prefixes[prefix]
        self._wanted.clear()

    def wants(self, name: str) -> bool:
        wanted = self._wanted.get(name)
        if wanted is None:
            raw = name.encode()
            wanted = self._wanted[name] = any(raw.startswith(p) for p in self.prefixes)
        return wanted

    def publish(self, name: str, data: dict[str, Any]) -> None:
        if name != self._name:
            self.flush()
            self._name = name
        envelope = _json.encode({"event": name, "ts": time.time_ns() // 1_000_000, "data": data})
        self._pending.append(envelope_item(envelope))
        if len(self._pending) >= MAX_RUN:
            self.flush()

    def flush(self) -> None:
        """Send the run of events held (the shard's loop calls this once a turn, before its replies)."""
        items = self._pending
        if not items:
            return
        name, self._pending, self._name = self._name, [], ""
        # a subscriber that cannot keep up loses events (past its SNDHWM zmq drops them unseen; a send
        # zmq refuses outright is counted here); the job path never waits for it
        try:
            self.socket.send_multipart([name.encode(), b"".join(items)], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += len(items)
            log.debug("%d events dropped: the event socket refused them (%d dropped)", len(items), self.dropped)
