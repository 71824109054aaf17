"""HTTP plumbing shared by the routes: the `Call` a handler sees, bounded body reading, the error renderer.

Job handlers are written against `Call` (path params, query, body, shard client) and return JSON bytes,
so the same function serves both the Starlette route and the fast path (`bunq.fastpath`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bunq.client import ShardClient
from bunq.errors import BunqError, PayloadTooLarge, RequestTimeout

log = logging.getLogger("bunq.front")

_json = msgspec.json.Encoder()
JSON = "application/json"
OK = b'{"ok":true}'


@dataclass(slots=True)
class Call:
    """One request as a handler needs it."""

    client: ShardClient
    params: dict[str, str]
    query_string: bytes
    body: bytes
    _query: dict[str, str] | None = None

    def query(self, name: str) -> str | None:
        if not self.query_string:
            return None
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string.decode("latin-1")))
        return self._query.get(name)


class QueueConvertor(Convertor[str]):
    """`{queue:queue}`: a path segment that may be empty, so `/queues//jobs` reaches the handler and is
    refused there as "Queue name is required" rather than being an unknown route."""

    regex = "[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("queue", QueueConvertor())

Result = bytes | tuple[int, bytes]
Handler = Callable[[Call], Awaitable[Result]]


def encode(payload: dict[str, Any]) -> bytes:
    return _json.encode(payload)


def batch_result(done: set[str], failed: dict[str, str]) -> Result:
    """`{ok, count}`, or a 400 naming the first refusal with every refused id and why."""
    if failed:
        first = next(iter(failed.values()))
        return 400, encode({"ok": False, "error": first, "count": len(done), "failed": failed})
    return b'{"ok":true,"count":' + str(len(done)).encode() + b"}"


def reply(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(_json.encode(payload), status_code=status, media_type=JSON)


def raw_reply(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=JSON)


def error_body(exc: BunqError) -> bytes:
    return _json.encode({"ok": False, "error": exc.message})


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large (max {limit} bytes)")


@contextlib.asynccontextmanager
async def body_deadline(scope: Any) -> AsyncIterator[None]:
    """A body that takes longer than `BUNQ_BODY_TIMEOUT_MS` to arrive is refused (408)."""
    seconds = scope["app"].state.settings.body_timeout_ms / 1000
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise RequestTimeout(f"Request body not received within {seconds:g} s") from None


async def read_body(request: Request) -> bytes:
    """The request body, refused as soon as it grows past the limit (never buffered beyond it)."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async with body_deadline(request.scope):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    return b"".join(chunks)


def endpoint(handler: Handler, *, with_body: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """Adapt a `Call` handler to a Starlette endpoint."""

    async def run(request: Request) -> Response:
        body = await read_body(request) if with_body else b""
        call = Call(request.app.state.client, request.path_params, request.scope.get("query_string", b""), body)
        result = await handler(call)
        if isinstance(result, tuple):
            return raw_reply(result[1], result[0])
        return raw_reply(result)

    run.__name__ = handler.__name__
    return run


async def on_bunq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BunqError)
    if exc.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return raw_reply(error_body(exc), exc.status)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "Not found" if exc.status_code == 404 else exc.detail
    return reply({"ok": False, "error": message}, exc.status_code)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return reply({"ok": False, "error": "Internal server error"}, 500)
