"""WebSocket: `/ws` and `/ws/queues/:q` — pub/sub of the event catalogue, and commands.

A client that never subscribes receives job events in the legacy format; `Subscribe` switches it to
`{event, ts, data}` frames for the names and wildcards it asked for. The upgrade is accepted, and a
`Subscribe` or `Auth` answered, only once the events asked for flow (the hub's barrier), so an action
taken right after never misses its event. Any command of `bunq.ws_commands` runs as its HTTP route
would and is answered with its `reqId`. With `AUTH_TOKENS` set, a client must
authenticate (the upgrade's `Authorization` header, or an `Auth` command) before anything else. When
the connection closes, every job it pulled and did not finish goes back to waiting at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgspec
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bunq import catalogue, ws_commands
from bunq import validation as v
from bunq.auth import bearer, token_ok
from bunq.client import Shards
from bunq.errors import BadRequest, BunqError, InvalidJson
from bunq.events import EventHub, Listener
from bunq.held import HeldJobs, RegisteredWorkers
from bunq.http import failure
from bunq.routes import monitoring
from bunq.tcp.commands import hello

log = logging.getLogger("bunq.ws")

LEGACY_TOPICS = ("job:",)
MAX_IN_FLIGHT = 256
WORKER_COMMANDS = ("RegisterWorker", "UnregisterWorker")  # a connection unregisters the workers it registered

_json = msgspec.json.Encoder()


class Connection:
    def __init__(self, ws: WebSocket, hub: EventHub, client: Shards, queue: str | None, authed: bool) -> None:
        self.ws = ws
        self.hub = hub
        self.client = client
        self.tokens: tuple[str, ...] = ws.app.state.settings.auth_tokens
        self.authed = authed
        self.listener = Listener(LEGACY_TOPICS, queue)
        self.patterns: list[str] = []
        self.held = HeldJobs()
        self.workers = RegisteredWorkers()
        self.send_lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, payload: dict[str, Any] | bytes) -> None:
        text = (payload if isinstance(payload, bytes) else _json.encode(payload)).decode()
        async with self.send_lock:
            await self.ws.send_text(text)

    async def pump_events(self) -> None:
        """Events to the client; one that cannot keep up is cut off (its buffer is bounded)."""
        inbox = self.listener.inbox
        while True:
            batch = [await inbox.get()]
            while not inbox.empty() and len(batch) < 256:
                batch.append(inbox.get_nowait())
            async with self.send_lock:
                for event in batch:
                    if event is None:
                        await self.ws.close(code=1013, reason="too slow: event buffer full")
                        return
                    frame = self.listener.frame(event)
                    if frame is not None:
                        await self.ws.send_text(frame.decode())

    async def listen(self) -> None:
        """Register for the legacy job events and return once they flow."""
        self.hub.add(self.listener)
        await self.hub.sync()

    def start_pump(self) -> None:
        self.spawn(self.pump_events())

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def on_text(self, text: str | bytes) -> None:
        try:
            message = _command_object(text.encode() if isinstance(text, str) else text)
        except BunqError as exc:
            # ws-commands.md's "Invalid JSON" for unparseable text, else the refusal (not an object, too deep);
            # with the reqId when the standard parser can read one (a lone surrogate bunq refuses, say)
            error = "Invalid JSON" if isinstance(exc, InvalidJson) else exc.message
            req_id = _req_id_of(text)
            await self.send({"ok": False, "error": error} | ({} if req_id is None else {"reqId": req_id}))
            return
        if len(self.tasks) > MAX_IN_FLIGHT:
            await self.send({"ok": False, "error": "Too many commands in flight", "reqId": message.get("reqId")})
            return
        self.spawn(self.command(message))

    async def command(self, message: dict[str, Any]) -> None:
        req_id = message.get("reqId")
        name = message.get("cmd")
        try:
            reply = await self.dispatch(name, message)
        except Exception as exc:  # the one renderer, as the HTTP routes use it
            reply = failure(exc, f"WebSocket command {name!r}")[1]
        if isinstance(reply, dict):
            reply = _json.encode(reply)
        if req_id is not None:
            try:
                reply = with_member(reply, b"reqId", req_id)
            except ValueError as exc:  # a route answered something else than an object: a bug, a 500
                reply = with_member(failure(exc, f"WebSocket command {name!r}")[1], b"reqId", req_id)
        await self.send(reply)

    async def dispatch(self, name: Any, message: dict[str, Any]) -> dict[str, Any] | bytes:
        """A command's answer: a route's JSON body as the route rendered it, or a dict of this layer's own."""
        if name == "Auth":
            if not token_ok(message.get("token") if isinstance(message.get("token"), str) else None, self.tokens):
                return {"ok": False, "error": "Unauthorized"}
            if not self.authed:
                self.authed = True
                await self.listen()
                self.start_pump()
            return {"ok": True}
        if not self.authed:
            return {"ok": False, "error": "Unauthorized"}
        if name == "Ping":
            return monitoring.pong()
        if name == "Hello":
            return hello()
        if name in ("Subscribe", "Unsubscribe"):
            return await self.subscription(name, message.get("events"))
        if not isinstance(name, str) or not name:
            return {"ok": False, "error": "Invalid command"}  # no `cmd`, or not a name
        if name not in ws_commands.COMMANDS:
            return {"ok": False, "error": f"Unknown command: {name}"}
        result = await ws_commands.run(self.client, name, message)
        body = result[1] if isinstance(result, tuple) else result
        self.held.track_encoded(name, message, body)
        if name in WORKER_COMMANDS:
            self.workers.track(name, message, msgspec.json.decode(body))
        return body

    async def subscription(self, name: str, events: Any) -> dict[str, Any]:
        """The reference's refusals: a Subscribe naming no list, or an empty one, or anything outside the
        catalogue (`Invalid: X`) changes nothing; an Unsubscribe of what the connection lacks is a no-op."""
        if name == "Subscribe":
            if not isinstance(events, list) or not events:  # "*" says everything
                return {"ok": False, "error": "events must be a non-empty array"}
            for pattern in events:
                if not isinstance(pattern, str) or not catalogue.known(pattern):
                    shown = pattern if isinstance(pattern, str) else _json.encode(pattern).decode()
                    return {"ok": False, "error": f"Invalid: {shown}"}
            patterns: list[str] = events
            self.patterns = list(dict.fromkeys(self.patterns + patterns))  # first asked first, each once
        else:
            patterns = v.strings("events", events if events is not None else [])
            if self.listener.legacy:  # never subscribed: nothing to drop, and its legacy events go on
                return {"ok": True, "unsubscribed": patterns, "subscribed": []}
            self.patterns = [x for x in self.patterns if x not in patterns] if patterns else []
        self.listener.legacy = False
        self.hub.retopic(self.listener, tuple(sorted({catalogue.topic_of(x) for x in self.patterns})))
        if name == "Subscribe":
            await self.hub.sync()
            return {"ok": True, "subscribed": self.patterns}  # as the reference: all it now receives
        return {"ok": True, "unsubscribed": patterns, "subscribed": self.patterns}

    async def close(self) -> None:
        self.hub.remove(self.listener)
        for task in list(self.tasks):
            task.cancel()
        await self.held.release(self.client, "WebSocket")
        await self.workers.release(self.client, "WebSocket")


def _command_object(raw: bytes) -> dict[str, Any]:
    """A frame as a command object, refused in the reference's words: text that is no JSON (none at all,
    or `null`) is "Invalid JSON", JSON that is no object names no command ("Invalid command")."""
    if not raw.strip():
        raise InvalidJson()
    value = v.decode_checked(v.any_decoder, raw)
    if value is None:
        raise InvalidJson()
    if not isinstance(value, dict):
        raise BadRequest("Invalid command")
    return value


def _req_id_of(text: str | bytes) -> Any:
    """The `reqId` of a message refused before it was read, by the lenient standard parser (the refusal's
    path only), so that a client matching replies by it gets this one."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return message.get("reqId") if isinstance(message, dict) else None


def with_member(body: bytes, key: bytes, value: Any) -> bytes:
    """The JSON object `body` with `"key": value` added as its last member, without decoding it (a pull's
    answer holds its jobs: decoding and encoding them again cost more than the rest of the command)."""
    end = body.rfind(b"}")
    if body[:1] != b"{" or end < 0 or body[end + 1 :].strip():
        raise ValueError("not a JSON object")
    head = body[:end].rstrip()
    return head + (b"" if head.endswith(b"{") else b",") + b'"' + key + b'":' + _json.encode(value) + b"}"


async def websocket_endpoint(ws: WebSocket) -> None:
    queue = ws.path_params.get("queue")
    settings = ws.app.state.settings
    if queue is not None:
        try:
            v.queue_name(queue)
        except BunqError:
            await ws.close(code=1008, reason="invalid queue name")
            return
    authed = token_ok(bearer(ws.headers.get("authorization")), settings.auth_tokens)
    conn = Connection(ws, ws.app.state.hub, ws.app.state.client, queue, authed)
    connections = ws.app.state.connections
    connections["ws"] += 1
    try:
        if authed:
            await conn.listen()  # before the accept: once open, a legacy client's events flow
        await ws.accept()
        if authed:
            conn.start_pump()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                text = message.get("bytes")
            if text is not None:
                await conn.on_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        connections["ws"] -= 1
        try:
            await conn.close()
        except Exception:
            log.exception("WebSocket close failed")


routes = [
    WebSocketRoute("/ws", websocket_endpoint),
    WebSocketRoute("/ws/queues/{queue:queue}", websocket_endpoint),
]
