"""The edge, between a client's bytes and the routes: CORS, the HTTP rate limit, bearer-token auth (one
ASGI layer, `Edge`, which also serves the hot routes), and a deadline and a size cap for the request head
of every connection (a uvicorn protocol).

Order: CORS (so refusals still carry CORS headers, and preflight needs no token) → rate limit → auth →
the hot routes, or Starlette's router.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from bunq import protocol as p
from bunq.auth import bearer, token_ok
from bunq.errors import BunqError
from bunq.http import ESCAPED_PATH
from bunq.routes import docs
from bunq.routes.ui import is_ui_path
from bunq.settings import Settings

if TYPE_CHECKING:
    from bunq.fastpath import FastPath  # which imports the routes, and they this module

log = logging.getLogger("bunq.front")

PROBES = frozenset({"/health", "/healthz", "/live", "/ready"})
CORS_METHODS = b"GET, POST, PUT, DELETE, OPTIONS"
CORS_HEADERS = b"Content-Type, Authorization"
UNAUTHORIZED = b'{"ok":false,"error":"Unauthorized"}'
RATE_LIMITED = b'{"ok":false,"error":"Rate limit exceeded"}'
HEAD_TOO_LARGE = b'{"ok":false,"error":"Request header fields too large"}'
UNPARSEABLE = b'{"ok":false,"error":"Invalid HTTP request"}'
ANY_ORIGIN = [(b"access-control-allow-origin", b"*")]
VARY_ORIGIN = (b"vary", b"Origin")
PREFLIGHT = [
    (b"access-control-allow-methods", CORS_METHODS),
    (b"access-control-allow-headers", CORS_HEADERS),
    (b"access-control-max-age", b"86400"),
]
LINGER_S = 1.0


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class Edge:
    """CORS, the HTTP rate limit and bearer-token auth, in that order, in one ASGI layer; then the route
    table's hot entries served from here (`bunq.fastpath`), every other request on to Starlette.

    - CORS: `CORS_ALLOW_ORIGIN` is `*` (default) or a list of origins, of which the matching one is echoed
      (with `Vary: Origin`); every response carries the headers, refusals too. Preflight is answered 204
      here, before the rate limit and auth.
    - Rate limit: per client IP, `RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`, counted by the
      aggregator so the limit holds for the whole server however many fronts serve it; off at 0.
    - Auth: with `AUTH_TOKENS`, every request needs `Authorization: Bearer <token>`, except the probes,
      the web UI's static files (`/ui`), the API docs (`/openapi.json`, `/docs`), and `/prometheus` unless
      `BUNQ_REQUIRE_AUTH_FOR_METRICS`. WebSockets authenticate themselves (header at the upgrade, or the
      `Auth` command).
    """

    def __init__(self, app: ASGIApp, settings: Settings, hot: FastPath) -> None:
        self.app = app
        self.hot = hot
        self.any_origin = "*" in settings.cors_origins
        self.origins = frozenset(settings.cors_origins)
        self.rate_limited = settings.rate_limit_max > 0
        self.tokens = settings.auth_tokens
        open_paths = PROBES | docs.PATHS  # the docs hold no data
        self.open_paths = open_paths if settings.require_auth_for_metrics else open_paths | {"/prometheus"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and await self.refuses_upgrade(scope):
                await send({"type": "websocket.close", "code": 1008})  # before the accept: a 403
                return
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        if raw and (b"%2F" in raw or b"%2f" in raw):
            scope = {**scope, "path": encoded_slashes_kept(raw), ESCAPED_PATH: True}
        cors = self.cors(scope)
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": [*cors, *PREFLIGHT]})
            await send({"type": "http.response.body", "body": b""})
            return
        if self.rate_limited and scope["path"] not in PROBES:
            retry_after = await self.over_limit(scope)
            if retry_after is not None:
                await respond(send, 429, RATE_LIMITED, [(b"retry-after", str(retry_after).encode()), *cors])
                return
        if self.tokens and scope["path"] not in self.open_paths and not is_ui_path(scope["path"]):
            if not token_ok(bearer(header(scope, b"authorization")), self.tokens):
                await respond(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer"), *cors])
                return
        found = self.hot.matcher.match(scope["method"], scope["path"])
        if found is not None:
            await self.hot.serve(found[0], found[1], scope, receive, send, cors)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def refuses_upgrade(self, scope: Scope) -> bool:
        """A WebSocket upgrade from a browser page of an origin outside a restricted `CORS_ALLOW_ORIGIN`
        (a WebSocket is not covered by CORS, so without this any page could drive every command of a
        server without tokens), or from a client over the HTTP rate limit (the upgrade is a request)."""
        if not self.any_origin:
            origin = header(scope, b"origin")
            if origin is not None and origin not in self.origins:
                return True
        return self.rate_limited and await self.over_limit(scope) is not None

    def cors(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        if self.any_origin:
            return ANY_ORIGIN
        origin = header(scope, b"origin")
        if origin is not None and origin in self.origins:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), VARY_ORIGIN]
        return [VARY_ORIGIN]

    async def over_limit(self, scope: Scope) -> int | None:
        """The seconds to wait when this request is over the client's limit (and counted otherwise)."""
        client = scope["app"].state.client
        try:
            verdict = await client.call_aggregator(p.CheckRate(client_ip(scope)))
        except BunqError as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", exc.message)
            return None
        if isinstance(verdict, p.RateVerdict) and not verdict.allowed:
            return int(verdict.retry_after_s)
        return None


def client_ip(scope: Scope) -> str:
    """X-Forwarded-For (first address), then X-Real-IP, then the socket's peer. A header value that is not
    an IP address is passed over: the rate limiter keys its counts by this, and arbitrary strings would let
    a client grow its table with keys of any length."""
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded:
        first = _address(forwarded.split(",")[0])
        if first:
            return first
    real = _address(header(scope, b"x-real-ip") or "")
    if real:
        return real
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _address(text: str) -> str | None:
    text = text.strip()
    if not text or len(text) > 45:  # the longest IPv6 text form
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class PipelineFlow(FlowControl):
    """uvicorn's flow control, except that reading does not resume while pipelined requests wait their
    turn. uvicorn resumes it whenever a response completes or a request reads its body, so a client that
    pipelines without waiting had one more read's worth of requests queued each time: a client sending
    `GET`s back to back and never reading grew a front past 3 GB. Now at most one read's worth waits."""

    def __init__(self, transport: asyncio.Transport, pipeline: Any) -> None:
        super().__init__(transport)
        self.pipeline = pipeline

    def resume_reading(self) -> None:
        if not self.pipeline:
            super().resume_reading()


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with two limits on a request's head (request line and headers), the
    WebSocket upgrade's included:

    - a deadline: a connection that has not sent a complete head within `BUNQ_HEADER_TIMEOUT_MS` of
      connecting (or of its previous response) is closed, so slow-drip clients cannot hold connections;
    - a size: a head past `BUNQ_MAX_HEADER_BYTES` is answered 431 and the connection closed, and nothing
      past the cap reaches the parser (which would otherwise buffer a header line of any length).

    The head's bytes are counted per chunk as they arrive, from the chunk after the previous request
    ended; of a chunk that would pass the cap only the bytes up to it are parsed, and unless a request
    ended within them, the head is too large.
    """

    open_connections = 0

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout_s = settings.header_timeout_ms / 1000
        self.cors_any = "*" in settings.cors_origins

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.flow = PipelineFlow(transport, self.pipeline)
        DeadlineHttpToolsProtocol.open_connections += 1
        self._head_bytes = 0
        self._in_head = True  # between requests and in a head; False while a body is read
        self._refused = False  # a head passed the cap
        self._linger: asyncio.TimerHandle | None = None
        self._upgraded = False
        self._writes = OneWrite(transport, self.loop)
        self._header_timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._head_due: float | None = None
        self._idle_due: float | None = None
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._idle_due = None  # the next request has begun
        if self._refused:
            return  # what follows a refused head is read and dropped until the connection closes
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_header_bytes - self._head_bytes
        self._head_bytes += min(len(data), room)
        if len(data) <= room:
            super().data_received(data)
            return
        super().data_received(data[:room])
        if self._in_head and self._head_bytes == self.max_header_bytes:  # no request ended within the cap
            self._refuse_head()
        elif self._upgraded:
            websocket = self.transport.get_protocol()
            assert isinstance(websocket, asyncio.Protocol)
            websocket.data_received(data[room:])
        elif not self.transport.is_closing():
            self.data_received(data[room:])  # a body, or the next request's head

    def _refuse_head(self) -> None:
        """431 and close. The close lingers a moment, reading and dropping what the client still sends,
        so that the client reads the answer instead of a reset."""
        self._refused = True
        self._cancel_header_deadline()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a response in progress ends the connection instead
            self.flow.pause_reading()
            return
        self._linger = self.loop.call_later(LINGER_S, self._close)
        self.transport.write(self._last_answer(b"431 Request Header Fields Too Large", HEAD_TOO_LARGE))
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def send_400_response(self, msg: str) -> None:
        """What uvicorn answers bytes its parser refuses (a bad `Content-Length`, a control character in a
        header, a broken request line): the JSON error every other refusal is, instead of its plain text."""
        self.transport.write(self._last_answer(b"400 Bad Request", UNPARSEABLE))
        self.transport.close()

    def _last_answer(self, status: bytes, body: bytes) -> bytes:
        """An answer written past the ASGI app, the connection's last."""
        headers = [*self.server_state.default_headers, (b"content-type", b"application/json")]
        if self.cors_any:
            headers.append((b"access-control-allow-origin", b"*"))
        headers += [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return b"HTTP/1.1 " + status + b"\r\n" + lines + b"\r\n" + body

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # Two deadlines, each a time kept on the connection, watched by one timer: the head's (above) and uvicorn's
    # keep-alive (an idle connection is closed `timeout_keep_alive` after its last response, until a byte of
    # the next request comes). Setting or clearing either per request costs attribute writes instead of a
    # loop timer made and cancelled each time (uvicorn makes one per response for its keep-alive). The timer,
    # when it fires, closes the connection if a deadline has passed, and otherwise waits for the nearer one.

    def _arm_header_deadline(self) -> None:
        self._head_due = due = self.loop.time() + self.header_timeout_s
        self._watch(due)

    def _watch(self, due: float) -> None:
        timer = self._header_timer
        if timer is None or due < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer_at = due
            self._header_timer = self.loop.call_at(due, self._header_timer_fired)

    def _header_timer_fired(self) -> None:
        self._header_timer = None
        head, idle = self._head_due, self._idle_due
        due = idle if head is None else head if idle is None else min(head, idle)
        if due is None:
            return
        if self.loop.time() >= due:
            self._head_due = self._idle_due = None
            self._close()
        else:
            self._watch(due)

    def _cancel_header_deadline(self) -> None:
        self._head_due = None

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_header_deadline()
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._writes  # type: ignore[assignment]  # write, close, is_closing: all it uses

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, with its keep-alive timer replaced by the idle deadline, and reading resumed after the
        # next pipelined request has started rather than before (PipelineFlow refuses it while one waits)
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_due = due = self.loop.time() + self.timeout_keep_alive
            self._watch(due)
        self.flow.resume_reading()
        if not self._refused:
            self._arm_header_deadline()

    def handle_websocket_upgrade(self) -> None:
        # From here the WebSocket protocol owns the connection (and is told of its loss): it no longer
        # counts as an HTTP one.
        self._upgraded = True
        DeadlineHttpToolsProtocol.open_connections -= 1
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._upgraded:
            DeadlineHttpToolsProtocol.open_connections -= 1
        self._cancel_header_deadline()
        self._stop_header_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)


class OneWrite:
    """What a response's cycle writes through: the head (status line and headers) is held back and leaves
    with the body that follows it, in one write. uvicorn writes them apart, which costs a second send
    syscall and, on the client's side, often a second wake-up and read for every response. A head that
    no body follows in the same turn of the loop (a stream whose first chunk is still to come) goes out
    at the end of that turn on its own."""

    __slots__ = ("transport", "loop", "head")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head + data)
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self.head = data
            self.loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


def http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """What uvicorn builds each connection's protocol with: `DeadlineHttpToolsProtocol` bound to the
    settings read at start-up. A partial of a module-level class pickles, so it reaches the worker
    processes uvicorn spawns; uvicorn only calls it (its annotation asks for the class itself)."""
    return cast("type[asyncio.Protocol]", functools.partial(DeadlineHttpToolsProtocol, settings=settings))


def encoded_slashes_kept(raw_path: bytes) -> str:
    """The request path decoded segment by segment, with a `/` and a `%` inside a segment written `%2F` and
    `%25`, so that `/crons/a%2Fb` routes as one segment instead of as `/crons/a/b` (404); the routes' handlers
    get their parameters unquoted again (`ESCAPED_PATH`): the cron `a/b`, the queue `a/b` (refused for its
    characters, 400, as the reference does)."""
    segments = raw_path.decode("latin-1").split("/")
    return "/".join(unquote(segment).replace("%", "%25").replace("/", "%2F") for segment in segments)


class DefaultHead:
    """The server's default headers (uvicorn's `date`, a new list each second) rendered once per list."""

    __slots__ = ("headers", "rendered")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.rendered = b""

    def of(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self.headers:
            self.rendered = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self.headers = headers
        return self.rendered


DEFAULT_HEAD = DefaultHead()


def write_whole(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Write a complete response (`headers` besides uvicorn's defaults; `content-length` is added) straight
    to the connection, in one write, when `send` is the send of uvicorn's httptools cycle with nothing in
    the way: the response not begun, writing not paused, the client still there. False, and nothing done,
    otherwise: the caller then sends it the ASGI way.

    What the cycle's two ASGI sends would have done, less what they check of headers that are the hot
    routes' own constants: write the same bytes (the defaults, then `headers`, `connection: close` where the
    connection is not kept alive), mark the response complete and tell the protocol (its next pipelined
    request, its idle deadline). The two sends were about 7% of a front's CPU under single pushes."""
    cycle = getattr(send, "__self__", None)
    if type(cycle) is not RequestResponseCycle or cycle.response_started or cycle.disconnected:
        return False
    writes: object = cycle.transport
    if type(writes) is not OneWrite or writes.head is not None or cycle.flow.write_paused:
        return False
    keep_alive = cycle.keep_alive
    head = [STATUS_LINE[status], DEFAULT_HEAD.of(cycle.default_headers)]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    head += (b"content-length: %d\r\n" % len(body), b"\r\n" if keep_alive else b"connection: close\r\n\r\n", body)
    cycle.response_started = cycle.response_complete = True
    cycle.waiting_for_100_continue = False
    writes.transport.write(b"".join(head))
    cycle.message_event.set()
    if not keep_alive:
        writes.transport.close()
    cycle.on_response()
    return True
