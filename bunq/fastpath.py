"""The job path's hottest routes (push, bulk, pull, pull-batch, ack, ack-batch) served straight from ASGI.

Installed as the innermost middleware, so whatever wraps the app (error handling, and later auth and
CORS) still applies; it only skips the router and request/response objects. The handlers are the same
`Call` functions the Starlette routes use, so behaviour cannot drift between the two.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bunq.errors import BunqError
from bunq.http import Call, Handler, body_deadline, error_body, too_large
from bunq.routes import jobs

log = logging.getLogger("bunq.front")

INTERNAL_ERROR = b'{"ok":false,"error":"Internal server error"}'


class ClientGone(Exception):
    pass


def match(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    parts = path.split("/")
    n = len(parts)
    if n == 4 and parts[1] == "queues" and parts[3] == "jobs" and parts[2]:
        if method == "POST":
            return jobs.add_job, {"queue": parts[2]}
        if method == "GET":
            return jobs.pull_job, {"queue": parts[2]}
    elif n == 5 and parts[1] == "queues" and parts[3] == "jobs" and parts[2] and method == "POST":
        if parts[4] == "bulk":
            return jobs.add_jobs_bulk, {"queue": parts[2]}
        if parts[4] == "pull-batch":
            return jobs.pull_jobs, {"queue": parts[2]}
    elif n == 4 and parts[1] == "jobs" and parts[3] == "ack" and parts[2] and method == "POST":
        return jobs.ack_job, {"id": parts[2]}
    elif n == 3 and parts[1] == "jobs" and parts[2] == "ack-batch" and method == "POST":
        return jobs.ack_jobs_batch, {}
    return None


class FastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = match(scope["method"], scope["path"])
            if found is not None:
                await self.serve(found[0], found[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def serve(self, handler: Handler, params: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        try:
            body = await read(scope, receive, state.settings.max_body_bytes) if scope["method"] != "GET" else b""
            result = await handler(Call(state.client, params, scope.get("query_string", b""), body))
            status, payload = (200, result) if isinstance(result, bytes) else result
        except ClientGone:
            return
        except BunqError as exc:
            if exc.status >= 500:
                log.warning("%s %s: %s", scope["method"], scope["path"], exc.message)
            status, payload = exc.status, error_body(exc)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            status, payload = 500, INTERNAL_ERROR
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def read(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The body, refused as soon as it grows past `limit` (never buffered beyond it)."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise too_large(limit)
            break
    message: Message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
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
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
