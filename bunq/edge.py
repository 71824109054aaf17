"""The edge, between a client's requests and the routes: CORS, the HTTP rate limit and bearer-token auth,
in one ASGI layer (`Edge`), which also serves the hot routes. (The connection below it, uvicorn's protocol
with its limits on request heads and the hot routes it serves without ASGI, is `bunq.httpconn`.)

Order: CORS (so refusals still carry CORS headers, and preflight needs no token) → rate limit → auth →
the hot routes, or Starlette's router.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
ANY_ORIGIN = [(b"access-control-allow-origin", b"*")]
VARY_ORIGIN = (b"vary", b"Origin")
PREFLIGHT = [
    (b"access-control-allow-methods", CORS_METHODS),
    (b"access-control-allow-headers", CORS_HEADERS),
    (b"access-control-max-age", b"86400"),
]


def header(scope: Scope, name: bytes) -> str | None:
    return header_in(scope["headers"], name)


def header_in(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
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
        return self.cors_of(scope["headers"])

    def cors_of(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The CORS headers of the response to a request with these headers."""
        if self.any_origin:
            return ANY_ORIGIN
        origin = header_in(headers, b"origin")
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


def encoded_slashes_kept(raw_path: bytes) -> str:
    """The request path decoded segment by segment, with a `/` and a `%` inside a segment written `%2F` and
    `%25`, so that `/crons/a%2Fb` routes as one segment instead of as `/crons/a/b` (404); the routes' handlers
    get their parameters unquoted again (`ESCAPED_PATH`): the cron `a/b`, the queue `a/b` (refused for its
    characters, 400, as the reference does)."""
    segments = raw_path.decode("latin-1").split("/")
    return "/".join(unquote(segment).replace("%", "%25").replace("/", "%2F") for segment in segments)
