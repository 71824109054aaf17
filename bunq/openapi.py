"""The OpenAPI 3.1 document (`GET /openapi.json`), generated from the routes the app serves.

Each route is described from the route table: a table `Operation`'s `Doc` names its summary and the msgspec
types of its query parameters, body and reply (`bunq.apidoc`), turned into JSON Schema by msgspec; the
routes that answer from the raw request (probes, Prometheus, SSE, WebSocket, these docs, the UI) are
described in `RAW` below. Its error statuses follow from what the route does: a body can be refused (400)
or too large (413) or too slow (408), a path parameter can name nothing (404), a shard can be unreachable
(503), any request can be rate limited (429) and, with `AUTH_TOKENS`, refused without a token (401) unless
its path is open (`bunq.edge`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from bunq import __version__, apidoc, ws_commands
from bunq.edge import PROBES
from bunq.http import Operation
from bunq.routes import docs
from bunq.routes.table import OPERATIONS
from bunq.routes.ui import is_ui_path
from bunq.settings import Settings

JSON = "application/json"
REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
ERRORS = {
    400: "Bad request: a body, query or path parameter refused (its message says which and why)",
    401: "Unauthorized: `AUTH_TOKENS` is set and no valid `Authorization: Bearer <token>` was sent",
    404: "Not found: no such job, cron, webhook or worker",
    408: "The request body did not arrive within `BUNQ_BODY_TIMEOUT_MS`",
    413: "The request body is larger than `BUNQ_MAX_BODY_BYTES`",
    429: "Rate limit exceeded (`RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS` and client IP)",
    503: "A shard is unavailable (restarting, or its disk is full)",
}

SSE = """A stream of `text/event-stream` frames, never closed by the server. The first frame is
`data: {"connected": true, "clientId": "..."}`, sent once events flow (an action taken after it is always
seen); then one `data: {...}` frame per job event (`{"event": "pushed" | "active" | "completed" | "failed" |
..., "queue", "jobId", "timestamp", ...}`), and a `: keep-alive` comment every 15 s."""

WS = f"""A WebSocket: send `GET` with `Connection: Upgrade`, `Upgrade: websocket` (answered 101). Frames are JSON
text. Until it subscribes, a client receives job events in the SSE frames' format. `{{"cmd": "Subscribe",
"events": ["job:*", "queue:paused", ...], "reqId": "1"}}` switches it to `{{"event", "ts", "data"}}` frames for
the names and wildcards asked for (`Unsubscribe` takes them back). Every other frame is a command,
`{{"cmd": NAME, "reqId": ..., ...its fields}}`, answered as its HTTP route would be, with the same `reqId`:
{", ".join(f"`{name}`" for name in ws_commands.COMMANDS)}. With `AUTH_TOKENS` set, the upgrade's
`Authorization` header or a first `{{"cmd": "Auth", "token": "..."}}` authenticates the connection. When it
closes, every job it pulled and did not finish goes back to waiting."""


@dataclass(frozen=True)
class Raw:
    """A route that answers from the raw request: what its 200 (or 101) carries, and its other statuses."""

    summary: str
    media: str = JSON
    reply: type | None = None
    statuses: tuple[int, ...] = ()
    description: str = ""
    ok_status: int = 200


RAW: dict[str, Raw] = {
    "/health": Raw("Health: status, uptime, counts, connections, memory", reply=apidoc.Health, statuses=(503,)),
    "/healthz": Raw("Liveness probe", "text/plain"),
    "/live": Raw("Liveness probe", "text/plain"),
    "/ready": Raw("Readiness: every shard answers", reply=apidoc.Ready, statuses=(503,)),
    "/prometheus": Raw(
        "Metrics in Prometheus text format 0.0.4 (bunq_* and the reference's bunqueue_* names)",
        "text/plain",
        statuses=(503,),
    ),
    "/events": Raw("Job events of every queue (Server-Sent Events)", "text/event-stream", description=SSE),
    "/events/queues/{queue}": Raw(
        "Job events of one queue (Server-Sent Events)", "text/event-stream", statuses=(400,), description=SSE
    ),
    "/ws": Raw("Events and commands over a WebSocket", "", description=WS, ok_status=101),
    "/ws/queues/{queue}": Raw(
        "Events of one queue and commands over a WebSocket", "", statuses=(400,), description=WS, ok_status=101
    ),
    "/openapi.json": Raw("This document"),
    "/docs": Raw("The API reference page (Swagger UI)", "text/html"),
    **{path: Raw("An asset of the API reference page", media) for path, (_, media) in docs.ASSETS.items()},
    "/ui": Raw("The web UI (redirects to /ui/)", "text/html", statuses=(308,)),
    "/ui/{path}": Raw("The web UI's page and assets", "*/*", statuses=(304, 404)),
}


def document(routes: Sequence[BaseRoute], settings: Settings) -> Any:
    """The document of `routes` (the app's), with `/prometheus` open or not as `settings` say."""
    table = {(op.method, op.path): op for op in OPERATIONS}
    served = list(_served(routes))
    types = _types(table[key] for key in ((m, p) for m, p, _ in served) if key in table)
    _, schemas = msgspec.json.schema_components(types, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    ids: set[Any] = set()
    for method, path, route in served:
        spec = _spec(path)
        op = table.get((method, path))
        described = _operation(op, spec, schemas) if op else _raw(spec, route)
        if not _is_open(spec, settings):
            described["responses"]["401"] = _error(401)
        else:
            described["security"] = []
        if "operationId" in described and described["operationId"] in ids:  # one handler, two routes
            described["operationId"] += "_" + re.sub(r"\W+", "_", spec.rsplit("/", 1)[-1])
        ids.add(described.get("operationId"))
        paths.setdefault(spec, {})[method.lower()] = described
    for kind in (apidoc.PullQuery, apidoc.ListJobsQuery, apidoc.DlqQuery):
        schemas.pop(kind.__name__, None)  # inlined as parameters
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "bunq",
            "version": __version__,
            "description": "A sharded job queue server speaking the bunqueue HTTP API. Every JSON reply has "
            "`ok`; a refusal is `{ok: false, error}` with its status. Auth (bearer) applies only when the "
            "server has `AUTH_TOKENS`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    return msgspec.json.decode(msgspec.json.encode(doc))  # plain JSON values (a default may be a tuple)


def _served(routes: Sequence[BaseRoute]) -> Iterable[tuple[str, str, BaseRoute]]:
    """(method, Starlette path, route) of every route served, HEAD left out (Starlette adds it to GET)."""
    for route in routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path, route
        elif isinstance(route, WebSocketRoute):
            yield "GET", route.path, route
        elif isinstance(route, Mount):
            yield "GET", route.path + "/{path}", route


def _spec(path: str) -> str:
    return _PARAM.sub(r"{\1}", path)


def _is_open(path: str, settings: Settings) -> bool:
    """Whether `bunq.edge` lets a request to `path` through without a token (the same rules)."""
    if path == "/prometheus":
        return not settings.require_auth_for_metrics
    return path in PROBES or path in docs.PATHS or is_ui_path(path)


def _types(ops: Iterable[Operation]) -> list[Any]:
    kinds: list[Any] = [apidoc.Error, apidoc.Ok]
    for op in ops:
        if op.doc is not None:
            kinds += [kind for kind in (op.doc.body, op.doc.query, op.doc.reply) if kind is not None]
    kinds += [r.reply for r in RAW.values() if r.reply is not None]
    return kinds


def _schema(kind: Any) -> dict[str, Any]:
    """The schema of a documented type: a reference to its component, or the list of one."""
    schema: dict[str, Any] = msgspec.json.schema(kind, ref_template=REF)
    schema.pop("$defs", None)
    return schema


def _path_params(path: str) -> list[dict[str, Any]]:
    params = []
    for name in _PARAM.findall(path):
        schema = _schema(apidoc.QueueName) if name == "queue" else {"type": "string", "minLength": 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_params(kind: type, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    component = schemas[kind.__name__]
    required = set(component.get("required", ()))
    params = []
    for name, schema in component["properties"].items():
        options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        plain = options[0] if len(options) == 1 else {"anyOf": options}
        if "default" in schema and schema["default"] is not None:
            plain = {**plain, "default": schema["default"]}
        params.append({"name": name, "in": "query", "required": name in required, "schema": plain})
    return params


def _error(status: int) -> dict[str, Any]:
    return {"description": ERRORS[status], "content": {JSON: {"schema": {"$ref": REF.format(name="Error")}}}}


def _operation(op: Operation, path: str, schemas: dict[str, Any]) -> dict[str, Any]:
    doc = op.doc
    if doc is None:
        raise ValueError(f"{op.method} {op.path}: the route table entry has no Doc")
    params = _path_params(path) + (_query_params(doc.query, schemas) if doc.query else [])
    reply = _schema(doc.reply or apidoc.Ok)
    out: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": op.handler.__name__,
        "tags": [path.split("/")[1]],
        "parameters": params,
        "responses": {"200": {"description": "Done", "content": {JSON: {"schema": reply}}}},
    }
    if doc.description:
        out["description"] = doc.description
    statuses = {429, *doc.errors}
    if params or doc.body:
        statuses.add(400)
    if _PARAM.search(path):
        statuses.add(404)
    if op.body:
        statuses |= {400, 408, 413}
    if op.request is not None:
        statuses.add(503)
    if doc.body is not None:
        component = schemas[doc.body.__name__]
        out["requestBody"] = {
            "required": bool(component.get("required")),
            "content": {JSON: {"schema": {"$ref": REF.format(name=doc.body.__name__)}}},
        }
    out["responses"].update({str(s): _error(s) for s in sorted(statuses)})
    return out


def _raw(path: str, route: BaseRoute) -> dict[str, Any]:
    raw = RAW.get(path)
    if raw is None:  # a route added without a description here: its endpoint's docstring, any content
        endpoint = getattr(route, "endpoint", None)
        summary = ((endpoint.__doc__ if endpoint else None) or path).strip().splitlines()[0]
        raw = Raw(summary, "*/*")
    content = {raw.media: {"schema": _schema(raw.reply) if raw.reply else {}}} if raw.media else None
    ok: dict[str, Any] = {"description": "Switching Protocols" if raw.ok_status == 101 else "OK"}
    if content:
        ok["content"] = content
    out: dict[str, Any] = {
        "summary": raw.summary,
        "tags": [path.split("/")[1] or "root"],
        "parameters": _path_params(path),
        "responses": {str(raw.ok_status): ok},
    }
    if raw.description:
        out["description"] = raw.description
    for status in (*raw.statuses, 429):
        if status in ERRORS:
            out["responses"][str(status)] = _error(status)
        elif status == 308:
            out["responses"]["308"] = {"description": "Permanent redirect"}
        else:  # 304
            out["responses"]["304"] = {"description": "Not modified (ETag)"}
    if path == "/ready":
        out["responses"]["503"] = {"description": "Not ready", "content": {JSON: {"schema": _schema(raw.reply)}}}
    return out
