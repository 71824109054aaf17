"""The edge, between a client's bytes and the routes: CORS, the HTTP rate limit, bearer-token auth, and
a header deadline on every connection. Pure ASGI (and one uvicorn protocol), so the fast path is
covered like every other route.

Order, outermost first: CORS (so refusals still carry CORS headers, and preflight needs no token) →
rate limit → auth → the app.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bunq import protocol as p
from bunq.auth import bearer, token_ok
from bunq.errors import BunqError
from bunq.settings import Settings

log = logging.getLogger("bunq.front")

PROBES = frozenset({"/health", "/healthz", "/live", "/ready"})
CORS_METHODS = b"GET, POST, PUT, DELETE, OPTIONS"
CORS_HEADERS = b"Content-Type, Authorization"
UNAUTHORIZED = b'{"ok":false,"error":"Unauthorized"}'
RATE_LIMITED = b'{"ok":false,"error":"Rate limit exceeded"}'


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class Cors:
    """`CORS_ALLOW_ORIGIN`: `*` (default) or a list of origins, of which the matching one is echoed
    (with `Vary: Origin`). Preflight requests are answered 204 here."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.any = "*" in settings.cors_origins
        self.origins = frozenset(settings.cors_origins)

    def allowed(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        if self.any:
            return [(b"access-control-allow-origin", b"*")]
        origin = header(scope, b"origin")
        vary = [(b"vary", b"Origin")]
        if origin is not None and origin in self.origins:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), *vary]
        return vary

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.allowed(scope)
        if scope["method"] == "OPTIONS":
            preflight = [
                *extra,
                (b"access-control-allow-methods", CORS_METHODS),
                (b"access-control-allow-headers", CORS_HEADERS),
                (b"access-control-max-age", b"86400"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def client_ip(scope: Scope) -> str:
    """X-Forwarded-For (first address), then X-Real-IP, then the socket's peer."""
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded:
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    real = header(scope, b"x-real-ip")
    if real and real.strip():
        return real.strip()
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimit:
    """Per client IP, `RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`, counted by the aggregator so
    the limit holds for the whole server however many fronts serve it. Off when the limit is 0."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.enabled = settings.rate_limit_max > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        client = scope["app"].state.client
        try:
            verdict = await client.call_aggregator(p.CheckRate(client_ip(scope)))
        except BunqError as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", exc.message)
            verdict = None
        if isinstance(verdict, p.RateVerdict) and not verdict.allowed:
            await respond(send, 429, RATE_LIMITED, [(b"retry-after", str(verdict.retry_after_s).encode())])
            return
        await self.app(scope, receive, send)


class Auth:
    """With `AUTH_TOKENS`, every request needs `Authorization: Bearer <token>`, except the probes and
    preflight (and `/prometheus` unless `BUNQ_REQUIRE_AUTH_FOR_METRICS`). WebSockets authenticate
    themselves (header at the upgrade, or the `Auth` command)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.tokens = settings.auth_tokens
        self.open_paths = PROBES if settings.require_auth_for_metrics else PROBES | {"/prometheus"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.tokens
            and scope["type"] == "http"
            and scope["method"] != "OPTIONS"
            and scope["path"] not in self.open_paths
            and not token_ok(bearer(header(scope, b"authorization")), self.tokens)
        ):
            await respond(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for a request's headers: a connection that has not
    sent a complete request head within `BUNQ_HEADER_TIMEOUT_MS` of connecting (or of its previous
    response) is closed, so slow-drip clients cannot hold connections."""

    header_timeout_s: float | None = None
    open_connections = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        DeadlineHttpToolsProtocol.open_connections += 1
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if DeadlineHttpToolsProtocol.header_timeout_s is None:
            DeadlineHttpToolsProtocol.header_timeout_s = Settings.from_env().header_timeout_ms / 1000
        self._header_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            DeadlineHttpToolsProtocol.header_timeout_s, self._header_deadline_passed
        )

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_header_deadline(self) -> None:
        timer = getattr(self, "_header_deadline", None)
        if timer is not None:
            timer.cancel()
            self._header_deadline = None

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._cancel_header_deadline()
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        DeadlineHttpToolsProtocol.open_connections -= 1
        self._cancel_header_deadline()
        super().connection_lost(exc)
