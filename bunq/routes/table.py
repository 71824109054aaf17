"""The front's route table, the single source of its HTTP routes: every `Operation` (method, path, handler,
request and reply types) of each route group, in the order Starlette matches them, plus the streaming
endpoints (SSE, WebSocket) and probes that answer from the raw request.

`bunq.fastpath` serves the entries marked `hot` straight from ASGI; `routes()` gives Starlette all of them
(the hot ones too, so a hot path the fast matcher declines, such as an empty queue name, is still answered
by the same handler).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from bunq.http import Operation, route
from bunq.routes import docs, events, jobs, monitoring, operations, queues, registries, ui, ws

OPERATIONS: tuple[Operation, ...] = (
    *jobs.operations,
    *operations.operations,
    *queues.operations,
    *registries.operations,
    *monitoring.operations,
)
HOT: tuple[Operation, ...] = tuple(op for op in OPERATIONS if op.hot)


def routes() -> list[BaseRoute]:
    return [
        *(route(op) for op in jobs.operations),
        *(route(op) for op in operations.operations),
        *(route(op) for op in queues.operations),
        *(route(op) for op in registries.operations),
        *events.routes,
        *ws.routes,
        *monitoring.routes,
        *docs.routes,
        *ui.routes,
        *(route(op) for op in monitoring.operations),
    ]
