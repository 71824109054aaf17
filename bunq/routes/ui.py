"""The web UI at `/ui`: a static page and its assets (bunq/ui/), served from the package by every front.

The files hold no data, so they are served without auth (`bunq.edge` exempts `/ui`); the page asks for a
token when the API answers 401 and sends it with every call it makes. Every response is `no-cache` with an
ETag, so an upgraded bunq is picked up at once while an unchanged asset costs a 304.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
PREFIX = "/ui"


def is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class UiFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = "no-cache"
        response.headers["x-content-type-options"] = "nosniff"
        return response


async def to_index(request: Request) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=308)


routes: list[BaseRoute] = [
    Route(PREFIX, to_index, methods=["GET", "HEAD"]),
    Mount(PREFIX, app=UiFiles(directory=UI_DIR, html=True), name="ui"),
]
