"""The HTTP connection, between a client's bytes and the edge: uvicorn's httptools protocol, with limits.

Its additions: a deadline and a size cap for every request's head, flow control that holds pipelined requests
back, responses written whole (`bunq.writes`), and the hot routes served from the protocol itself (`HotCycle`).

A hot request (push, bulk, pull, pull-batch, ack, ack-batch: `bunq.routes.table.HOT`) that needs nothing the
ASGI path gives it is answered here, without the ASGI scope, the request/response cycle, its task wrapper
and the edge's hops: the handler is the table's, its errors are rendered by the one renderer, its response
bytes are those the ASGI path writes. Anything else takes the ASGI path (`bunq.edge.Edge`, then
`bunq.fastpath` or Starlette), so every case this one leaves out keeps the behaviour it had: a request
pipelined behind another, a body not complete in the read that completed its head (the body deadline is
the ASGI path's), chunked bodies, `Expect: 100-continue`, an escaped path, the HTTP rate limit (which asks
the aggregator), a token that auth would refuse (401), and one whose `Content-Length` is over the cap (413).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any, cast

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from bunq.auth import bearer, token_ok
from bunq.edge import ANY_ORIGIN
from bunq.settings import Settings
from bunq.writes import JSON_TYPE, OneWrite, render

if TYPE_CHECKING:
    from bunq.edge import Edge
    from bunq.fastpath import FastPath
    from bunq.http import Operation

log = logging.getLogger("bunq.front")

HEAD_TOO_LARGE = b'{"ok":false,"error":"Request header fields too large"}'
UNPARSEABLE = b'{"ok":false,"error":"Invalid HTTP request"}'
LINGER_S = 1.0


class PipelineFlow(FlowControl):
    """uvicorn's flow control, except that reading does not resume while pipelined requests wait their
    turn. uvicorn resumes it whenever a response completes or a request reads its body, so a client that
    pipelines without waiting had one more read's worth of requests queued each time: a client sending
    `GET`s back to back and never reading grew a front past 3 GB. Now at most one read's worth waits."""

    def __init__(self, transport: asyncio.Transport, pipeline: Any) -> None:
        super().__init__(transport)
        self.pipeline = pipeline

    def resume_reading(self) -> None:
        if not self.pipeline:
            super().resume_reading()


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with two limits on a request's head (request line and headers), the
    WebSocket upgrade's included:

    - a deadline: a connection that has not sent a complete head within `BUNQ_HEADER_TIMEOUT_MS` of
      connecting (or of its previous response) is closed, so slow-drip clients cannot hold connections;
    - a size: a head past `BUNQ_MAX_HEADER_BYTES` is answered 431 and the connection closed, and nothing
      past the cap reaches the parser (which would otherwise buffer a header line of any length).

    The head's bytes are counted per chunk as they arrive, from the chunk after the previous request
    ended; of a chunk that would pass the cap only the bytes up to it are parsed, and unless a request
    ended within them, the head is too large.

    A hot request is served by the protocol itself (`HotCycle`, the module's docstring says when).
    """

    open_connections = 0

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout_s = settings.header_timeout_ms / 1000
        self.cors_any = "*" in settings.cors_origins
        self.hot: FastPath | None = getattr(self.app, "hot", None)  # the front's (`bunq.app.Front`)
        self.max_body_bytes = settings.max_body_bytes

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.flow = PipelineFlow(transport, self.pipeline)
        DeadlineHttpToolsProtocol.open_connections += 1
        self._head_bytes = 0
        self._in_head = True  # between requests and in a head; False while a body is read
        self._refused = False  # a head passed the cap
        self._last_words: bytes | None = None  # a refusal held back until the responses before it are out
        self._linger: asyncio.TimerHandle | None = None
        self._upgraded = False
        self._writes = OneWrite(transport, self.loop)
        self._header_timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._head_due: float | None = None
        self._idle_due: float | None = None
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self._idle_due = None  # the next request has begun
        if self._refused or self._last_words is not None:
            return  # what follows a refused head is read and dropped until the connection closes
        if not self._in_head:
            self._feed(data)
            return
        room = self.max_header_bytes - self._head_bytes
        self._head_bytes += min(len(data), room)
        if len(data) <= room:
            self._feed(data)
            return
        self._feed(data[:room])
        if self._in_head and self._head_bytes == self.max_header_bytes:  # no request ended within the cap
            self._refuse_head()
        elif self._upgraded:
            websocket = self.transport.get_protocol()
            assert isinstance(websocket, asyncio.Protocol)
            websocket.data_received(data[room:])
        elif not self.transport.is_closing():
            self.data_received(data[room:])  # a body, or the next request's head

    def _feed(self, data: bytes) -> None:
        super().data_received(data)
        cycle: RequestResponseCycle | HotCycle = self.cycle
        if type(cycle) is HotCycle and cycle.more_body and not self.transport.is_closing():
            self._to_asgi(cycle)  # its body did not come whole with the head

    def _refuse_head(self) -> None:
        """431 and close. The close lingers a moment, reading and dropping what the client still sends,
        so that the client reads the answer instead of a reset."""
        self._refused = True
        self._cancel_header_deadline()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a response in progress ends the connection instead
            self.flow.pause_reading()
            return
        self._linger = self.loop.call_later(LINGER_S, self._close)
        self.transport.write(self._last_answer(431, HEAD_TOO_LARGE))
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def send_400_response(self, msg: str) -> None:
        """What uvicorn answers bytes its parser refuses (a bad `Content-Length`, a control character in a
        header, a broken request line): the JSON error every other refusal is, instead of its plain text.
        Requests that came before the bad bytes are answered first, in order, as they would have been: a
        client whose push was stored must not read a 400 in place of its 200. A request whose own body the
        parser refuses while it waits behind them (a bad chunk size) is dropped unstarted, and the 400 is its
        answer."""
        answer = self._last_answer(400, UNPARSEABLE)
        cycle: RequestResponseCycle | HotCycle | None = self.cycle
        if cycle is not None and not self.transport.is_closing():
            waiting = bool(self.pipeline) and self.pipeline[0][0] is cycle
            if waiting and cycle.more_body:  # its body broke off: it never runs; those before it are answered
                self.pipeline.popleft()
            if waiting or (not cycle.more_body and not cycle.response_complete):
                self._last_words = answer  # written by `on_response_complete` once the pipeline is empty
                self.flow.pause_reading()
                return
        self.transport.write(answer)
        self.transport.close()

    def _last_answer(self, status: int, body: bytes) -> bytes:
        """An answer written past the ASGI app, the connection's last."""
        headers = [JSON_TYPE, *ANY_ORIGIN] if self.cors_any else [JSON_TYPE]
        return render(status, self.server_state.default_headers, headers, body, keep_alive=False)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # Two deadlines, each a time kept on the connection, watched by one timer: the head's (above) and uvicorn's
    # keep-alive (an idle connection is closed `timeout_keep_alive` after its last response, until a byte of
    # the next request comes). Setting or clearing either per request costs attribute writes instead of a
    # loop timer made and cancelled each time (uvicorn makes one per response for its keep-alive). The timer,
    # when it fires, closes the connection if a deadline has passed, and otherwise waits for the nearer one.

    def _arm_header_deadline(self) -> None:
        self._head_due = due = self.loop.time() + self.header_timeout_s
        self._watch(due)

    def _watch(self, due: float) -> None:
        timer = self._header_timer
        if timer is None or due < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer_at = due
            self._header_timer = self.loop.call_at(due, self._header_timer_fired)

    def _header_timer_fired(self) -> None:
        self._header_timer = None
        head, idle = self._head_due, self._idle_due
        due = idle if head is None else head if idle is None else min(head, idle)
        if due is None:
            return
        if self.loop.time() >= due:
            self._head_due = self._idle_due = None
            self._close()
        else:
            self._watch(due)

    def _cancel_header_deadline(self) -> None:
        self._head_due = None

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_header_deadline()
        hot = self._hot_cycle() if self.hot is not None else None
        if hot is not None:
            self.cycle = hot  # type: ignore[assignment]  # what uvicorn's protocol reads of a cycle, it has
            return
        self._asgi_cycle()

    def on_message_begin(self) -> None:
        # uvicorn's, less the ASGI scope: a hot request needs none, `_asgi_cycle` builds it for the others
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _asgi_cycle(self) -> None:
        """uvicorn's handling of a complete head: the ASGI scope, the cycle, its task (or its place in the
        pipeline). The scope is uvicorn's own, built over the head already parsed."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        HttpToolsProtocol.on_message_begin(self)
        self.url, self.expect_100_continue = url, expect_100_continue
        self.headers = self.scope["headers"] = headers
        HttpToolsProtocol.on_headers_complete(self)
        if self.cycle is not None:
            self.cycle.transport = self._writes  # type: ignore[assignment]  # write, close, is_closing: all it uses

    def _hot_cycle(self) -> HotCycle | None:
        """The request whose head just ended as a `HotCycle`, when the protocol can serve it; else None."""
        previous = self.cycle
        if previous is not None and not previous.response_complete:
            return None  # pipelined behind a response in progress: uvicorn's queue keeps the order
        edge: Edge | None = getattr(self.app, "edge", None)
        if edge is None or edge.rate_limited or self.expect_100_continue or self.root_path:
            return None
        parser = self.parser
        if parser.should_upgrade() or self.limit_concurrency is not None:
            return None
        url = httptools.parse_url(self.url)
        found = self._hot_route(parser.get_method(), url.path)
        if found is None:
            return None
        length = authorization = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                return None
            elif name == b"authorization":
                authorization = value
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return None
        token = bearer(authorization.decode("latin-1")) if authorization else None
        if edge.tokens and not token_ok(token, edge.tokens):
            return None
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        op, params, method, path = found
        headers = [JSON_TYPE, *edge.cors_of(self.headers)]
        return HotCycle(op, params, url.query or b"", method, path, keep_alive, headers)

    def _hot_route(self, method: bytes, raw_path: bytes) -> tuple[Operation, dict[str, str], str, str] | None:
        """The hot entry a request's method and path match (an escaped path is left to the edge)."""
        if b"%" in raw_path or self.hot is None:
            return None
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            return None  # uvicorn refuses it
        text = method.decode("ascii")
        found = self.hot.matcher.match(text, path)
        return None if found is None else (found[0], found[1], text, path)

    def _to_asgi(self, hot: HotCycle) -> None:
        """Hand a hot request whose body is still to come to the ASGI path, as if it had never been taken:
        uvicorn's cycle for it (from the parser's state, still this request's), with the body so far."""
        self.cycle = None  # type: ignore[assignment]  # it was taken with no response in progress
        self._asgi_cycle()
        cycle = self.cycle
        if cycle is not None and hot.chunks:
            cycle.body += b"".join(hot.chunks)
            cycle.message_event.set()

    def on_body(self, body: bytes) -> None:
        cycle: RequestResponseCycle | HotCycle = self.cycle
        if type(cycle) is HotCycle:
            cycle.chunks.append(body)  # within `Content-Length`, itself within the cap
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        cycle: RequestResponseCycle | HotCycle = self.cycle
        if type(cycle) is HotCycle:
            cycle.more_body = False
            task = self.loop.create_task(self._serve_hot(cycle))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)  # the server waits for it at shutdown
            return
        super().on_message_complete()

    async def _serve_hot(self, cycle: HotCycle) -> None:
        assert self.hot is not None
        try:
            body = b"".join(cycle.chunks)
            cycle.chunks.clear()  # the cycle stays the connection's until its next request: not its body
            status, payload = await self.hot.answer(cycle.op, cycle.params, cycle.query, body, cycle.method, cycle.path)
            if cycle.disconnected:
                return
            if self.flow.write_paused:  # the client is not reading: wait, as the ASGI send does
                await self.flow.drain()
                if cycle.disconnected:
                    return
            keep_alive = cycle.keep_alive  # read now: a shutdown or a refused head may have cleared it
            cycle.response_complete = True
            self.transport.write(render(status, self.server_state.default_headers, cycle.headers, payload, keep_alive))
            if not keep_alive:
                self.transport.close()
            self.on_response_complete()
        except asyncio.CancelledError:  # the server's shutdown, past its grace
            self.transport.close()
            raise
        except Exception:  # a bug here, not in the handler (whose errors are answers)
            log.exception("%s %s failed", cycle.method, cycle.path)
            self.transport.close()

    def on_response_complete(self) -> None:
        # uvicorn's, with its keep-alive timer replaced by the idle deadline, and reading resumed after the
        # next pipelined request has started rather than before (PipelineFlow refuses it while one waits).
        # A pipelined request started here has its head already: no head deadline runs while it is served
        # (a long poll may wait past it), and the usual one starts when it is answered. A further head sent
        # meanwhile is bounded so by the request's own time (a long poll's timeout at most) plus the deadline.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            self.flow.resume_reading()
            return
        if self._last_words is not None:
            self.transport.write(self._last_words)
            self.transport.close()
            return
        self.flow.resume_reading()
        now = self.loop.time()
        self._idle_due = idle = now + self.timeout_keep_alive
        if self._refused:
            self._watch(idle)
        else:
            self._head_due = head = now + self.header_timeout_s
            self._watch(min(idle, head))

    def handle_websocket_upgrade(self) -> None:
        # From here the WebSocket protocol owns the connection (and is told of its loss): it no longer
        # counts as an HTTP one.
        self._upgraded = True
        DeadlineHttpToolsProtocol.open_connections -= 1
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._upgraded:
            DeadlineHttpToolsProtocol.open_connections -= 1
        self._cancel_header_deadline()
        self._stop_header_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)


class NoEvent:
    """What uvicorn's protocol sets on a `HotCycle` (a body chunk came, the connection was lost): a hot
    request is served once it is whole, and its task looks at `disconnected` itself."""

    __slots__ = ()

    def set(self) -> None:
        return None


NO_EVENT = NoEvent()


class HotCycle:
    """A hot request served by the protocol: the request as the handler needs it, and what uvicorn's
    protocol reads and writes of a cycle (`response_complete`, `disconnected`, `keep_alive`,
    `message_event`) when the connection is lost, shut down or refused, or the next request pipelined."""

    __slots__ = (
        "op", "params", "query", "method", "path", "keep_alive", "headers", "chunks", "more_body",
        "response_complete", "disconnected", "message_event",
    )  # fmt: skip

    def __init__(
        self,
        op: Operation,
        params: dict[str, str],
        query: bytes,
        method: str,
        path: str,
        keep_alive: bool,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.op = op
        self.params = params
        self.query = query
        self.method = method
        self.path = path
        self.keep_alive = keep_alive
        self.headers = headers  # the response's own: its type and CORS
        self.chunks: list[bytes] = []
        self.more_body = True  # until the whole body has come
        self.response_complete = False
        self.disconnected = False
        self.message_event = NO_EVENT


def http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """What uvicorn builds each connection's protocol with: `DeadlineHttpToolsProtocol` bound to the
    settings read at start-up. A partial of a module-level class pickles, so it reaches the worker
    processes uvicorn spawns; uvicorn only calls it (its annotation asks for the class itself)."""
    return cast("type[asyncio.Protocol]", functools.partial(DeadlineHttpToolsProtocol, settings=settings))
