"""The front: a Starlette app (one per uvicorn worker process) that validates requests and calls shards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import zmq.asyncio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from bunq import collector
from bunq.client import ShardClient, Shards
from bunq.connections import ConnectionReport
from bunq.edge import Edge
from bunq.errors import BunqError
from bunq.events import EventHub
from bunq.fastpath import FastPath
from bunq.http import on_error
from bunq.procinfo import tie_front_worker
from bunq.routes import table
from bunq.settings import Settings
from bunq.tcp.server import TcpServer


class Front(Starlette):
    """Starlette with `Edge` in front of its whole stack rather than inside it. Starlette puts its error
    middleware outside every user middleware, so each hot request would pass Starlette's dispatch and the
    error middleware's send wrapper before reaching the edge; the hot routes render their own errors, and
    every other request still meets the full stack (error middleware, exception handlers, router) behind
    the edge."""

    def __init__(self, settings: Settings, hot: FastPath, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings_for_edge = settings
        self.hot = hot
        self.edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        edge = self.edge
        if edge is None:  # built on first use, as Starlette builds its stack
            self.middleware_stack = self.build_middleware_stack()
            edge = self.edge = Edge(self.middleware_stack, self.settings_for_edge, self.hot)
        await edge(scope, receive, send)


def create_app(settings: Settings | None = None, client: Shards | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    serving = client is None  # a front process of its own (tests hand in their own link, in their process)
    if serving:
        tie_front_worker()
    shard_client = client or ShardClient(settings, with_aggregator=True)
    connections = {"ws": 0, "sse": 0}
    report = ConnectionReport(shard_client, connections)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await shard_client.start()
        events_ctx = zmq.asyncio.Context()
        hub = EventHub(events_ctx, settings.events_endpoint, settings.shards)
        hub.start()
        app.state.hub = hub
        report.start()
        tcp = TcpServer(settings, shard_client, hub) if serving and settings.tcp_port else None
        if tcp is not None:
            await tcp.start()
            listener = tcp
            report.protocol_connections = lambda: len(listener.connections)
        if serving:
            collector.settle()
        try:
            yield
        finally:
            if tcp is not None:
                await tcp.close()
            await report.close()
            hub.close()
            events_ctx.term()
            await shard_client.close()

    app = Front(
        settings,
        FastPath(shard_client, settings.max_body_bytes),
        routes=table.routes(),
        # one handler; Starlette needs it named for the exceptions it would otherwise render itself
        exception_handlers={BunqError: on_error, HTTPException: on_error, Exception: on_error},
        lifespan=lifespan,
    )
    # `/stats/` is a 404 like any unknown path: Starlette would answer 307 to `/stats`, built from the
    # request's Host header (a redirect to wherever the client says the server is)
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.client = shard_client
    app.state.connections = connections
    app.state.connection_report = report
    return app
