"""The front: a Starlette app (one per uvicorn worker process) that validates requests and calls shards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import zmq.asyncio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bunq import __version__
from bunq import protocol as p
from bunq.client import ShardClient
from bunq.errors import BunqError
from bunq.events import EventHub
from bunq.fastpath import FastPath
from bunq.http import on_bunq_error, on_http_error, on_unexpected, reply
from bunq.routes import events, jobs, operations, queues, registries, ws
from bunq.settings import Settings


async def health(request: Request) -> Response:
    return reply({"ok": True, "status": "healthy", "version": __version__})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("OK")


async def ready(request: Request) -> Response:
    client: ShardClient = request.app.state.client
    replies = await client.call_all(p.Ping())
    if client.with_aggregator:
        replies.append(await client.call_raw(client.shards, p.Ping()))
    is_ready = all(isinstance(r, p.Pong) for r in replies)
    return reply({"ok": is_ready, "ready": is_ready}, 200 if is_ready else 503)


def create_app(settings: Settings | None = None, client: ShardClient | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    shard_client = client or ShardClient(settings, with_aggregator=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await shard_client.start()
        events_ctx = zmq.asyncio.Context()
        hub = EventHub(events_ctx, settings.events_endpoint)
        hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            hub.close()
            events_ctx.term()
            await shard_client.close()

    app = Starlette(
        routes=[
            *jobs.routes,
            *operations.routes,
            *queues.routes,
            *registries.routes,
            *events.routes,
            *ws.routes,
            Route("/health", health, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/live", healthz, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
        ],
        middleware=[Middleware(FastPath)],
        exception_handlers={BunqError: on_bunq_error, HTTPException: on_http_error, Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.client = shard_client
    return app
