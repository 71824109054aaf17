"""One command sent as a WebSocket or a TCP client sends it, answered without its `reqId`: for the tests
that run each bunqueue command over both protocols."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from websockets.sync.client import connect

from tests.support.processes import BunqServer
from tests.support.tcp import RawTcp

Send = Callable[[dict[str, Any]], dict[str, Any]]
PROTOCOLS = ("ws", "tcp")


@contextlib.contextmanager
def sender(protocol: str, server: BunqServer) -> Iterator[Send]:
    if protocol == "tcp":
        with RawTcp(server.tcp_port) as tcp:
            yield lambda message: {k: v for k, v in tcp.call(message).items() if k != "reqId"}
        return
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:

        def call(message: dict[str, Any]) -> dict[str, Any]:
            ws.send(json.dumps({**message, "reqId": "x"}))
            while True:  # skipping the job events a client that never subscribed receives
                frame = json.loads(ws.recv(timeout=10))
                if frame.get("reqId") == "x":
                    return {k: v for k, v in frame.items() if k != "reqId"}

        yield call
