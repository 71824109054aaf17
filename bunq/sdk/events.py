"""The event stream of a bunq server over its WebSocket pub/sub (`/ws`, `/ws/queues/:queue`): subscribe to
event names or wildcards, yield each event, reopen a dropped connection with backoff."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import random
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator
from typing import Any

import msgspec
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as connect_sync

from bunq.sdk._base import segment
from bunq.sdk.errors import BunqError, for_status
from bunq.sdk.models import Event

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
MAX_BACKOFF_S = 5.0

# the blocking streams' open connections, closed when the interpreter exits: a stream left suspended (iterated
# from a module-level variable, then abandoned) is otherwise closed while the interpreter finalizes, when the
# connection's daemon reader thread can no longer run, and that close waits for it forever
_open_sync: weakref.WeakSet[ClientConnection] = weakref.WeakSet()
_exiting = threading.Event()


@atexit.register
def _close_sync_streams() -> None:
    _exiting.set()
    for ws in list(_open_sync):
        with contextlib.suppress(Exception):
            ws.close()


def _refusal(body: bytes) -> str:
    """The `error` of a refused upgrade's JSON body (or the body itself)."""
    try:
        frame: Any = _decode(body)
    except msgspec.DecodeError:
        return body.decode(errors="replace") or "refused"
    error = frame.get("error") if isinstance(frame, dict) else None
    return error if isinstance(error, str) else body.decode(errors="replace") or "refused"


class EventStream:
    def __init__(self, url: str, token: str | None, queue: str | None, names: list[str]) -> None:
        base = "ws" + url[len("http") :] if url.startswith("http") else url
        self.url = base + ("/ws" if queue is None else f"/ws/queues/{segment(queue)}")
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.subscribe = _encode({"cmd": "Subscribe", "events": names, "reqId": "subscribe"})
        self.failures = 0

    def event(self, message: str | bytes) -> Event | None:
        """The event a frame carries; None for a command's reply (the subscription's acknowledgement)."""
        try:
            frame: Any = _decode(message)
        except msgspec.DecodeError:
            return None
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            if isinstance(frame, dict) and frame.get("ok") is False:
                # the upgrade is accepted without a token (a client may send `Auth` after it): a missing or
                # wrong one shows as the subscription's refusal, which must raise what a 401 raises
                error = str(frame.get("error"))
                raise for_status(401 if error == "Unauthorized" else 400, error, frame)
            return None
        self.failures = 0
        data = frame.get("data")
        ts = frame.get("ts")
        ts = ts if isinstance(ts, int) else 0
        return Event(event=frame["event"], ts=ts, data=data if isinstance(data, dict) else {})

    def backoff(self, exc: Exception, reconnect: bool) -> float:
        """How long to wait before reconnecting; raises when the stream should end instead."""
        if isinstance(exc, InvalidStatus):
            status = exc.response.status_code
            if status in (401, 403, 404):
                raise for_status(status, _refusal(bytes(exc.response.body or b""))) from exc
        if not reconnect:
            raise BunqError(f"event stream closed: {exc}") from exc
        self.failures += 1
        wait: float = min(MAX_BACKOFF_S, 0.1 * 2**self.failures)
        return wait * (0.5 + random.random() / 2)

    async def aiter(self, reconnect: bool) -> AsyncGenerator[Event, None]:
        while True:
            try:
                async with connect_async(self.url, additional_headers=self.headers, max_size=2**24) as ws:
                    await ws.send(self.subscribe.decode())
                    async for message in ws:
                        event = self.event(message)
                        if event is not None:
                            yield event
                error: Exception = ConnectionError("server closed the stream")
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                error = exc
            await asyncio.sleep(self.backoff(error, reconnect))

    def iter(self, reconnect: bool) -> Generator[Event, None, None]:
        while True:
            try:
                with connect_sync(self.url, additional_headers=self.headers, max_size=2**24) as ws:
                    _open_sync.add(ws)
                    ws.send(self.subscribe.decode())
                    for message in ws:
                        event = self.event(message)
                        if event is not None:
                            yield event
                error: Exception = ConnectionError("server closed the stream")
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                error = exc
            if _exiting.is_set():
                return
            time.sleep(self.backoff(error, reconnect))
