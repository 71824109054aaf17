"""The route table's hot entries (push, bulk, pull, pull-batch, ack, ack-batch) served straight from ASGI.

Served by the edge once auth, the rate limit and CORS passed; it skips the router and the request/response
objects, and writes each response as one piece (`bunq.writes.write_whole`) where it can. The routes,
handlers, body reader and error renderer are the table's and `bunq.http`'s, so behaviour cannot drift
between the two paths. Most hot requests never reach ASGI: the connection's protocol serves them
(`bunq.httpconn.HotCycle`) with the same `FastPath.answer`.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from bunq.client import Shards
from bunq.http import Call, Operation, failure, path_params, read_body
from bunq.routes.table import HOT
from bunq.writes import JSON_TYPE, write_whole

Segments = tuple[tuple[int, str], ...]  # (position in the split path, literal text or parameter name)
Candidate = tuple[Segments, Segments, Operation]  # literals, parameters, entry


class Matcher:
    """Matches `method path` against table entries by method, segment count and first segment, then the other
    literal segments; a parameter must be a non-empty segment (an empty one is left to Starlette, whose
    handler refuses it)."""

    def __init__(self, entries: Iterable[Operation]) -> None:
        self.index: dict[tuple[str, int, str], list[Candidate]] = {}
        for op in entries:
            parts = op.path.split("/")
            if len(parts) < 2 or parts[1].startswith("{"):
                raise ValueError(f"a fast path must start with a literal segment: {op.path}")
            literals = tuple((i, part) for i, part in enumerate(parts) if i > 1 and not part.startswith("{"))
            params = tuple((i, part[1:-1].split(":")[0]) for i, part in enumerate(parts) if part.startswith("{"))
            self.index.setdefault((op.method, len(parts), parts[1]), []).append((literals, params, op))

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        parts = path.split("/")
        if len(parts) < 2:
            return None
        for literals, params, op in self.index.get((method, len(parts), parts[1]), ()):
            for i, text in literals:
                if parts[i] != text:
                    break
            else:
                values: dict[str, str] = {}
                for i, name in params:
                    if not parts[i]:
                        break
                    values[name] = parts[i]
                else:
                    return op, values
        return None


class FastPath:
    """The hot entries, matched and served by `bunq.edge.Edge` once a request passed CORS, the rate limit
    and auth (the response gets the CORS headers the edge chose)."""

    def __init__(self, client: Shards, max_body_bytes: int, entries: Iterable[Operation] = HOT) -> None:
        self.matcher = Matcher(entries)
        self.client = client  # held here: the app's `state` is a Python-level attribute lookup per use
        self.max_body_bytes = max_body_bytes

    async def serve(
        self,
        op: Operation,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        try:
            body = await read_body(scope, receive, self.max_body_bytes) if op.body else b""
        except ClientDisconnect:
            return
        except Exception as exc:
            status, payload = failure(exc, f"{scope['method']} {scope['path']}")
        else:
            query = scope.get("query_string", b"")
            status, payload = await self.answer(
                op, path_params(scope, params), query, body, scope["method"], scope["path"]
            )
        headers = [JSON_TYPE, *extra_headers] if extra_headers else [JSON_TYPE]
        if write_whole(send, status, payload, headers):
            return
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def answer(
        self, op: Operation, params: dict[str, str], query: bytes, body: bytes, method: str, path: str
    ) -> tuple[int, bytes]:
        """The status and body of the response to a hot request: the handler's, or its error rendered."""
        try:
            result = await op.handler(Call(self.client, params, query, body))
        except Exception as exc:  # the one renderer, as Starlette's handler uses it
            return failure(exc, f"{method} {path}")
        return (200, result) if isinstance(result, bytes) else result
