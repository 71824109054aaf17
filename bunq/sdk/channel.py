"""`JobChannel`: a worker's pulls, acks, failures and lease heartbeats over one WebSocket (`/ws` commands).

Why a worker uses it rather than HTTP: a command on an open WebSocket costs the worker far less CPU than an
httpx request (a no-op worker's CPU per job halved, 26 to 12 µs), so the same slots move more jobs. And the
server ties what was pulled to the connection: when it closes (the worker died, was killed, lost the
network), the server puts every job pulled on it and not finished back to waiting at once, instead of after
its lock.

That is also its cost. A connection that breaks hands the worker's running jobs back: they run again, as
any job whose lease expired, and the worker's acks of them (sent over HTTP once the channel is closed) are
refused by their stale tokens. Where nothing was handed back (the front holding them died), the same acks
complete them.

Replies are matched to requests by `reqId`; at most `MAX_IN_FLIGHT` commands are out at once (the server
refuses more). A call that gets no answer in time closes the channel: a reply it missed could hold jobs
nobody runs, and closing is what gives them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bunq.sdk import _base
from bunq.sdk.errors import BunqError, PayloadTooLarge, TransportError, Unauthorized, Unavailable, for_status
from bunq.sdk.models import BatchResult, Job, Lease

log = logging.getLogger("bunq.worker")

WS_PATH = "/ws"
MAX_IN_FLIGHT = 128  # of the server's 256 per connection
MAX_MESSAGE = 8 * 1024 * 1024  # a larger command goes over HTTP (the server takes WebSocket messages to 16 MiB)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Reply(msgspec.Struct):
    """Every answer the worker's commands get, decoded straight into its fields (a pull's jobs into `Job`s,
    without a dict in between); other fields are skipped."""

    req_id: str | None = msgspec.field(default=None, name="reqId")
    ok: bool = True
    error: str | None = None
    jobs: list[Job] = msgspec.field(default_factory=list)
    tokens: list[str | None] | None = None
    count: int = 0
    failed: dict[str, str] | None = None


_decode_reply = msgspec.json.Decoder(Reply).decode


class NoWebSocket(BunqError):
    """The server (or a proxy before it) does not accept the upgrade to a WebSocket."""


class TooLarge(PayloadTooLarge):
    """A command over `MAX_MESSAGE`, not sent: the caller sends it over HTTP, whose limit is higher."""


def refusal(reply: Reply) -> BunqError:
    """The exception for a command's `{ok: false, error}` (commands carry no status: it is told by the text)."""
    text = reply.error or "refused"
    body = msgspec.structs.asdict(reply)
    if text == "Unauthorized":
        return Unauthorized(text, 401, body)
    if text.endswith(("did not answer in time", "is overloaded", "the outcome of this request is unknown")):
        return Unavailable(text, 503, body)
    return for_status(400, text, body)


class JobChannel:
    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.base = ("ws" + url[len("http") :] if url.startswith("http") else url).rstrip("/")
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.closed = False
        self._closing = False  # closed by `close()`, not dropped
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._ids = itertools.count()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def open(self) -> None:
        try:
            self._ws = await connect(
                self.base + WS_PATH,
                additional_headers=self.headers,
                open_timeout=self.timeout,
                max_size=None,  # a pull's reply is as large as its jobs (the server bounds what it sends)
                compression=None,
                user_agent_header=_base.USER_AGENT,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise Unauthorized("Unauthorized", 401) from exc
            raise NoWebSocket(f"the WebSocket upgrade was refused (HTTP {status})", status) from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws), name="bunq-channel")
        # a connection that never subscribes gets every job event in the legacy format: none wanted here
        await self.call({"cmd": "Unsubscribe", "events": []})

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                reply = _read_reply(message)
                if reply is not None and reply.req_id is not None:
                    waiter = self._waiting.pop(reply.req_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(reply)
        except ConnectionClosed:
            pass
        finally:
            self._closed()

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(TransportError("the worker's WebSocket closed"))
        if not self._closing:
            log.warning("the worker's WebSocket closed with %d commands unanswered; opening another", len(waiting))

    async def close(self, *, dropped: bool = False) -> None:
        """Close the connection; with `dropped`, it is reported as a drop would be."""
        self._closing = not dropped
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._closed()

    async def call(self, message: dict[str, Any], wait_ms: int = 0) -> Reply:
        """Send one command and return its reply (`{ok: false, ...}` included: the caller knows what a refusal
        of its command means). TransportError when the connection is or goes down, or no reply comes in time."""
        if self.closed or self._ws is None:
            raise TransportError("the worker's WebSocket is closed")
        async with self._slots:
            req_id = str(next(self._ids))
            message["reqId"] = req_id
            text = _encode(message)
            if len(text) > MAX_MESSAGE:
                raise TooLarge(f"a {message.get('cmd')} of {len(text)} bytes", 413)
            waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._waiting[req_id] = waiter
            try:
                await self._ws.send(text.decode())
                return await asyncio.wait_for(waiter, self.timeout + wait_ms / 1000)
            except ConnectionClosed as exc:
                self._closed()
                raise TransportError("the worker's WebSocket closed") from exc
            except TimeoutError as exc:
                log.warning("no answer to %s in time: reopening the worker's WebSocket", message.get("cmd"))
                asyncio.get_running_loop().create_task(self.close(dropped=True))
                raise TransportError(f"no answer to {message.get('cmd')} in time") from exc
            finally:
                self._waiting.pop(req_id, None)

    async def pull_batch(self, queue: str, count: int, timeout: int, owner: str, lock_ttl: int) -> list[Lease]:
        reply = await self.call(
            {"cmd": "PULLB", "queue": queue, "count": count, "timeout": timeout, "owner": owner, "lockTtl": lock_ttl},
            wait_ms=timeout,
        )
        if not reply.ok:
            raise refusal(reply)
        tokens = reply.tokens or []
        return [Lease(job, tokens[i] if i < len(tokens) else None) for i, job in enumerate(reply.jobs)]

    async def batch(self, message: dict[str, Any]) -> BatchResult:
        """ACKB or JobHeartbeatB: how many ids it applied to, and why each other id was refused."""
        reply = await self.call(message)
        if not reply.ok and reply.failed is None:
            raise refusal(reply)
        return BatchResult(count=reply.count, failed=reply.failed or {})

    async def fail(self, job_id: str, error: str, token: str | None) -> None:
        message: dict[str, Any] = {"cmd": "FAIL", "id": job_id, "error": error}
        if token is not None:
            message["token"] = token
        reply = await self.call(message)
        if not reply.ok:
            raise refusal(reply)


def _read_reply(message: str | bytes) -> Reply | None:
    """A reply, or None for a message that is none (not JSON, not an object). One whose fields do not have the
    types expected (a server speaking another dialect) is a refusal of its command, not the reader's end."""
    try:
        return _decode_reply(message)
    except msgspec.ValidationError as exc:
        try:
            raw = _decode(message)
        except msgspec.DecodeError:
            return None
        req_id = raw.get("reqId") if isinstance(raw, dict) else None
        return Reply(req_id=str(req_id), ok=False, error=f"unreadable reply: {exc}") if req_id is not None else None
    except msgspec.DecodeError:
        return None
