"""HTTP plumbing shared by the routes: bounded body reading, JSON replies and the one error renderer."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bunq.errors import BunqError, PayloadTooLarge

log = logging.getLogger("bunq.front")

_json = msgspec.json.Encoder()
JSON = "application/json"


def reply(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(_json.encode(payload), status_code=status, media_type=JSON)


def raw_reply(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=JSON)


OK = b'{"ok":true}'


async def read_body(request: Request) -> bytes:
    """The request body, refused as soon as it grows past the limit (never buffered beyond it)."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body too large (max {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body too large (max {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def on_bunq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BunqError)
    if exc.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return reply({"ok": False, "error": exc.message}, exc.status)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "Not found" if exc.status_code == 404 else exc.detail
    return reply({"ok": False, "error": message}, exc.status_code)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return reply({"ok": False, "error": "Internal server error"}, 500)
