"""HTTP plumbing shared by the routes: the route table's `Operation`, the `Call` a handler sees, the one body
reader and the one error renderer.

Handlers are written against `Call` (path params, query, body, shard client) and return JSON bytes, so the
same function serves the Starlette route, the fast path (`bunq.fastpath`) and the WebSocket command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope

from bunq import protocol as p
from bunq.client import Shards
from bunq.errors import BunqError, PayloadTooLarge, RequestTimeout

log = logging.getLogger("bunq.front")

_json = msgspec.json.Encoder()
JSON = "application/json"
OK = b'{"ok":true}'
INTERNAL_ERROR = b'{"ok":false,"error":"Internal server error"}'

ESCAPED_PATH = "bunq.escaped_path"  # set in a scope whose path `bunq.edge` re-escaped (an encoded slash in it)


def path_params(scope: Scope, params: dict[str, str]) -> dict[str, str]:
    """The route's parameters as the client meant them: unquoted again where the edge kept a `%2F` (and
    escaped `%`) inside a segment so that it routed as one."""
    if scope.get(ESCAPED_PATH):
        return {name: unquote(value) for name, value in params.items()}
    return params


@dataclass(slots=True)
class Call:
    """One request as a handler needs it."""

    client: Shards
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

    def query_all(self, *names: str) -> list[str]:
        """Every value of the parameters `names`, repeated ones included, in the order sent."""
        if not self.query_string:
            return []
        return [value for key, value in parse_qsl(self.query_string.decode("latin-1")) if key in names]


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


@dataclass(frozen=True, slots=True)
class Doc:
    """What the OpenAPI document (`bunq.openapi`) says of a route: a summary, the msgspec types of its query
    parameters, request body and success reply (`bunq.apidoc`; None: no query, no body, `{"ok": true}`),
    and the error statuses it can answer beyond those every route of its kind can."""

    summary: str
    body: type | None = None
    query: type | None = None
    reply: type | None = None
    errors: tuple[int, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One entry of the route table: `method path` runs `handler`, which sends a `request` command to a shard
    or the aggregator and expects a `reply` of that type (None for what the front answers by itself)."""

    method: str
    path: str
    handler: Handler
    request: type[p.Command] | None = None
    reply: type[p.Reply] | None = None
    body: bool = True  # reads a request body
    hot: bool = False  # served straight from ASGI by `bunq.fastpath`, skipping the router
    doc: Doc | None = None  # for the OpenAPI document


def encode(payload: dict[str, Any]) -> bytes:
    return _json.encode(payload)


def encode_data(data: dict[str, Any]) -> bytes:
    """`{ok: true, data}`: the reference's shape for the commands that answer in it."""
    return _json.encode({"ok": True, "data": data})


def batch_result(done: set[str], failed: dict[str, str]) -> Result:
    """`{ok, count}`, or a 400 naming the first refusal with every refused id and why."""
    if failed:
        first = next(iter(failed.values()))
        return 400, encode({"ok": False, "error": first, "count": len(done), "failed": failed})
    return b'{"ok":true,"count":' + str(len(done)).encode() + b"}"


def raw_reply(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=JSON)


def error_body(exc: BunqError) -> bytes:
    return _json.encode({"ok": False, "error": exc.message})


def failure(exc: BaseException, what: str) -> tuple[int, bytes]:
    """The one error renderer: a failure as `(status, {"ok": false, "error": ...})`. An expected error keeps its
    status and message (a 5xx logged); anything else is a bug, logged with its traceback and answered 500."""
    if isinstance(exc, BunqError):
        if exc.status >= 500:
            log.warning("%s: %s", what, exc.message)
        return exc.status, error_body(exc)
    if isinstance(exc, HTTPException):
        message = "Not found" if exc.status_code == 404 else exc.detail
        return exc.status_code, _json.encode({"ok": False, "error": message})
    log.error("%s failed", what, exc_info=exc)
    return 500, INTERNAL_ERROR


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large (max {limit} bytes)")


@contextlib.asynccontextmanager
async def body_deadline(scope: Scope) -> AsyncIterator[None]:
    """A body that takes longer than `BUNQ_BODY_TIMEOUT_MS` to arrive is refused (408)."""
    seconds = scope["app"].state.settings.body_timeout_ms / 1000
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise RequestTimeout(f"Request body not received within {seconds:g} s") from None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The one body reader: refused (413) as soon as it grows past `limit`, never buffered beyond it; a body
    arriving in several chunks must be complete within the body deadline (408); a client that goes away
    raises `ClientDisconnect`. A first chunk that comes with the head costs no timer."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise too_large(limit)
            break
    message: Message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise too_large(limit)
    if not message.get("more_body"):
        return body
    async with body_deadline(scope):
        return await _rest(receive, limit, body)


async def _rest(receive: Receive, limit: int, body: bytes) -> bytes:
    message: Message = {"more_body": True}
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def endpoint(handler: Handler, *, with_body: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """Adapt a `Call` handler to a Starlette endpoint. Here the first chunk of a body is under the deadline
    too (the fast path spares the hot routes that timer)."""

    async def run(request: Request) -> Response:
        body = b""
        if with_body:
            async with body_deadline(request.scope):
                body = await read_body(request.scope, request.receive, request.app.state.settings.max_body_bytes)
        params = path_params(request.scope, request.path_params)
        call = Call(request.app.state.client, params, request.scope.get("query_string", b""), body)
        result = await handler(call)
        if isinstance(result, tuple):
            return raw_reply(result[1], result[0])
        return raw_reply(result)

    run.__name__ = handler.__name__
    return run


def route(operation: Operation) -> Route:
    """The Starlette route of a table entry."""
    endpoint_ = endpoint(operation.handler, with_body=operation.body)
    return Route(operation.path, endpoint_, methods=[operation.method])


async def on_error(request: Request, exc: Exception) -> Response:
    """The front's one exception handler (Starlette's, for every route outside the fast path)."""
    status, body = failure(exc, f"{request.method} {request.url.path}")
    return raw_reply(body, status)
