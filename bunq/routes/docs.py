"""`GET /openapi.json` (the OpenAPI document, made once per app from the routes it serves, by `bunq.openapi`)
and `GET /docs`, the API reference page (Swagger UI, vendored in bunq/static/docs/, nothing from a CDN).

They hold no data, so they are served without auth (`bunq.edge` lets `PATHS` through)."""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).resolve().parent.parent / "static" / "docs"
ASSETS = {
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "/docs/docs.js": ("docs.js", "text/javascript; charset=utf-8"),
}
PATHS = frozenset({"/openapi.json", "/docs", *ASSETS})
CACHE = {"cache-control": "no-cache"}


async def openapi(request: Request) -> Response:
    state = request.app.state
    body: bytes | None = getattr(state, "openapi", None)
    if body is None:
        import msgspec

        from bunq.openapi import document  # it imports the route table, which imports this module

        body = msgspec.json.encode(document(request.app.routes, state.settings))
        state.openapi = body
    return Response(body, media_type="application/json", headers=CACHE)


async def page(request: Request) -> Response:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html; charset=utf-8", headers=CACHE)


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _asset(name: str, media: str) -> Route:
    async def serve(request: Request) -> Response:
        return Response(_read(name), media_type=media, headers={"cache-control": "public, max-age=3600"})

    path = "/docs/" + name
    return Route(path, serve, methods=["GET"], name=path)


routes: list[BaseRoute] = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", page, methods=["GET"]),
    *(_asset(name, media) for name, media in ASSETS.values()),
]
