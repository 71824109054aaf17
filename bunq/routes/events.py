"""Server-Sent Events: `GET /events` and `GET /events/queues/:q`, in the spec's legacy frame format.

The first frame, `connected`, goes out once the stream's events flow (the hub's barrier): a job pushed
after it is always seen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bunq import validation as v
from bunq.events import EventHub, Listener

KEEPALIVE_S = 15.0
SSE_TOPICS = ("job:",)

_json = msgspec.json.Encoder()


async def _stream(hub: EventHub, listener: Listener, connections: dict[str, int]) -> AsyncIterator[bytes]:
    hub.add(listener)
    connections["sse"] += 1
    try:
        await hub.sync()
        yield b"data: " + _json.encode({"connected": True, "clientId": str(uuid.uuid4())}) + b"\n\n"
        while True:
            try:
                event = await asyncio.wait_for(listener.inbox.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if event is None:
                return
            yield b"data: " + event.legacy() + b"\n\n"
    finally:
        connections["sse"] -= 1
        hub.remove(listener)


def _sse(request: Request, queue: str | None) -> Response:
    hub: EventHub = request.app.state.hub
    headers = {
        "Content-Type": "text/event-stream",  # as the reference sends it (a media_type would gain a charset)
        "Cache-Control": "no-cache",
        "Connection": "keep-alive",
        "X-Accel-Buffering": "no",
    }
    listener = Listener(SSE_TOPICS, queue)
    stream = _stream(hub, listener, request.app.state.connections)
    return StreamingResponse(stream, headers=headers)


async def events(request: Request) -> Response:
    return _sse(request, None)


async def queue_events(request: Request) -> Response:
    return _sse(request, v.queue_name(request.path_params["queue"]))


routes = [
    Route("/events", events, methods=["GET"]),
    Route("/events/queues/{queue:queue}", queue_events, methods=["GET"]),
]
