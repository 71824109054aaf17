"""The TCP listener of a front process: bunqueue's protocol on `TCP_PORT`, one connection per client.

Each front process listens on the same port (SO_REUSEPORT; the kernel spreads connections over them),
with the front's shard link and event hub, so a request takes the same path as over HTTP and WebSocket:
frame → `bunq.tcp.codec` → `bunq.tcp.commands` → `bunq.ws_commands` → the HTTP route's handler → shards.

Per connection: requests run concurrently and are answered as they finish (each reply carries its
`reqId`); past `MAX_IN_FLIGHT` unanswered requests, and while its replies wait for it beyond the
transport's high-water mark (a client that sends without reading), the socket is not read until they
are answered and gone. A frame over 64 MiB is answered with an error and the connection closed; a frame
left incomplete for `TCP_IDLE_TIMEOUT_MS` closes it; a client that does not read is cut off once
`MAX_WRITE_BUFFER` bytes wait for it, and a subscriber's events wait in its bounded buffer (the hub cuts
off one that falls behind). With `AUTH_TOKENS` set, every command but `Auth` is refused until
one succeeds. When a connection ends, the jobs it pulled and did not finish go back to waiting at once
and the workers it registered are unregistered.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, cast

import msgspec

from bunq import validation as v
from bunq import ws_commands
from bunq.auth import token_ok
from bunq.client import Shards
from bunq.errors import BadRequest
from bunq.events import Event, EventHub, Listener
from bunq.held import HeldJobs, RegisteredWorkers
from bunq.http import failure
from bunq.routes import monitoring
from bunq.settings import Settings
from bunq.tcp import codec, commands

log = logging.getLogger("bunq.tcp")

MAX_IN_FLIGHT = 256
MAX_WRITE_BUFFER = 64 * 1024 * 1024
EVENT_TOPICS = ("job:", "queue:paused", "queue:resumed", "queue:drained")

_decode_json = msgspec.json.Decoder().decode


def event_frame(event: Event) -> bytes:
    """`{type: "event", event: {eventType, queue, jobId, timestamp, ...}}`, as bunqueue's `QueueEvents` reads
    it: the legacy form, with a completion's result in `data` and the names of the TypeScript client. Every
    frame has a string `jobId`, empty for a queue's own events (`paused`, `resumed`, `drained`), as the
    reference sends them: the TypeScript client takes a frame without one for a broken connection, and
    reconnects."""
    fields = event.legacy_fields()
    if not isinstance(fields.get("jobId"), str):
        fields["jobId"] = ""
    return codec.encode({"type": "event", "event": fields})


class TcpConnection(asyncio.Protocol):
    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.client = server.client
        self.authed = not server.settings.auth_tokens
        # until it authenticates, a connection holds no more than an `Auth` needs (a stranger could
        # otherwise make the front buffer 64 MiB per connection for the idle timeout)
        self.reader = codec.FrameReader(codec.MAX_FRAME if self.authed else codec.MAX_UNAUTHENTICATED_FRAME)
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.workers = RegisteredWorkers()
        self.listener: Listener | None = None
        self.pump: asyncio.Task[None] | None = None
        self.stall: asyncio.TimerHandle | None = None
        self.paused = False  # not reading the socket: too many requests in flight, or replies not read
        self.writable = asyncio.Event()  # clear while the transport's buffer is over its high-water mark
        self.writable.set()
        self.closed = False
        self.outbox: list[bytes] = []

    # --- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one without being a subclass
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except codec.FrameTooLarge as exc:
            self.write({"ok": False, "error": str(exc)})
            self.close()
            return
        self.watch_partial(bool(frames))
        for frame in frames:
            self.start(frame)

    def pause_writing(self) -> None:
        """The client reads its replies slower than they come: read no more of its requests until it has
        caught up, so what waits for it stays about the transport's high-water mark, not every reply."""
        self.writable.clear()
        self.update_reading()

    def resume_writing(self) -> None:
        self.writable.set()
        self.update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()  # a pump waiting to write sees the end
        self.server.connections.discard(self)
        if self.stall is not None:
            self.stall.cancel()
        for task in list(self.tasks):
            task.cancel()
        self.unsubscribe()
        self.server.spawn(self.release())

    # --- limits

    def watch_partial(self, progressed: bool) -> None:
        """A frame must arrive whole within the idle timeout, counted from when it began (a completed frame
        restarts the count; bytes trickling into the same frame do not)."""
        if not self.reader.partial:
            if self.stall is not None:
                self.stall.cancel()
                self.stall = None
            return
        if self.stall is not None and not progressed:
            return
        if self.stall is not None:
            self.stall.cancel()
        seconds = self.server.settings.tcp_idle_timeout_ms / 1000
        self.stall = asyncio.get_running_loop().call_later(seconds, self.stalled)

    def stalled(self) -> None:
        log.warning("closing a TCP connection: a frame left incomplete (%d bytes buffered)", len(self.reader.buffer))
        self.abort()

    def write(self, message: dict[str, Any]) -> None:
        self.send(codec.encode(message))

    def send(self, framed: bytes) -> None:
        """Queue a frame; the frames of one turn of the event loop go out in one write."""
        if self.closed or self.transport is None:
            return
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outbox.append(framed)

    def flush(self) -> None:
        frames, self.outbox = self.outbox, []
        if not frames or self.closed or self.transport is None:
            return
        self.transport.write(b"".join(frames))
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("closing a TCP connection: its client does not read (%d bytes waiting)", MAX_WRITE_BUFFER)
            self.abort()

    def close(self) -> None:
        """After what is queued has gone out."""
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # --- requests

    def start(self, frame: bytes) -> None:
        try:
            message = codec.decode(frame)
        except codec.NotFinite as exc:
            refusal = {"ok": False, "error": str(exc)}
            self.write(refusal if exc.req_id is None else {**refusal, "reqId": exc.req_id})
            return
        except (msgspec.DecodeError, ValueError):
            self.write({"ok": False, "error": "Invalid command format"})
            return
        task = asyncio.create_task(self.handle(message))
        self.tasks.add(task)
        task.add_done_callback(self.finished)
        self.update_reading()

    def finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.update_reading()

    def update_reading(self) -> None:
        """Stop reading at `MAX_IN_FLIGHT` unanswered requests or while replies wait for the client; read
        again once half of those are answered and the replies have gone."""
        if self.closed or self.transport is None:
            return
        writable = self.writable.is_set()
        if not self.paused and (not writable or len(self.tasks) >= MAX_IN_FLIGHT):
            self.paused = True
            self.transport.pause_reading()
        elif self.paused and writable and len(self.tasks) < MAX_IN_FLIGHT // 2:
            self.paused = False
            self.transport.resume_reading()

    async def handle(self, message: dict[str, Any]) -> None:
        req_id = message.get("reqId")
        name = message.get("cmd")
        try:
            reply = await self.dispatch(name, message)
        except Exception as exc:  # the one renderer, as the HTTP routes use it
            reply = _decode_json(failure(exc, f"TCP command {name!r}")[1])
        if req_id is not None:
            reply["reqId"] = req_id
        self.write(reply)

    async def dispatch(self, name: Any, message: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(name, str) or not name:
            return {"ok": False, "error": "Invalid command"}
        if name == "Auth":
            return self.auth(message.get("token"))
        if not self.authed:
            return {"ok": False, "error": "Not authenticated"}
        if name == "Hello":
            return commands.hello()
        if name == "Ping":
            return monitoring.pong()
        if name == "SubscribeEvents":
            return await self.subscribe(message.get("queue"))
        if name == "UnsubscribeEvents":
            self.unsubscribe()
            return {"ok": True}
        if name not in ws_commands.COMMANDS:
            return {"ok": False, "error": f"Unknown command: {name}"}
        message = commands.request(name, message, self.server.held)
        result = await ws_commands.run(self.client, name, message)
        body: dict[str, Any] = _decode_json(result[1] if isinstance(result, tuple) else result)
        self.track(name, message, body)
        if name == "GetJob" and isinstance(body.get("job"), dict):
            await self.with_result(body["job"])
        return commands.reply(name, message, body)

    async def with_result(self, job: dict[str, Any]) -> None:
        """A completed job's `returnvalue`, which bunqueue's `Queue.getJob` reads from the job itself."""
        if job.get("state") != "completed" or "returnvalue" in job:
            return
        result = await ws_commands.run(self.client, "GetResult", {"id": job["id"]})
        found: dict[str, Any] = _decode_json(result[1] if isinstance(result, tuple) else result)
        job["returnvalue"] = found.get("result")

    def auth(self, token: Any) -> dict[str, Any]:
        if self.server.settings.auth_tokens and not token_ok(
            token if isinstance(token, str) else None, self.server.settings.auth_tokens
        ):
            return {"ok": False, "error": "Invalid token"}
        self.authed = True
        self.reader.limit = codec.MAX_FRAME
        return {"ok": True}

    def track(self, name: str, message: dict[str, Any], body: dict[str, Any]) -> None:
        if not (name == "PULL" and message.get("detach") is True):  # bunqueue's CLI acks on another connection
            self.server.held.track(name, message, body, self)
        self.workers.track(name, message, body)

    # --- events

    async def subscribe(self, queue: Any) -> dict[str, Any]:
        """This connection's job events of one queue, from the moment of the answer on (the hub's barrier)."""
        if not isinstance(queue, str):
            raise BadRequest("Queue name is required")
        v.queue_name(queue)
        self.unsubscribe()
        listener = self.listener = Listener(EVENT_TOPICS, queue)
        self.server.hub.add(listener)
        self.pump = asyncio.create_task(self.pump_events(listener))
        await self.server.hub.sync()
        return {"ok": True}

    def unsubscribe(self) -> None:
        if self.listener is not None:
            self.server.hub.remove(self.listener)
            self.listener = None
        if self.pump is not None:
            self.pump.cancel()
            self.pump = None

    async def pump_events(self, listener: Listener) -> None:
        """While the client does not read, events wait in the listener's bounded buffer (and a subscriber
        that falls too far behind is cut off by the hub), not in the transport."""
        inbox = listener.inbox
        while True:
            await self.writable.wait()
            batch = [await inbox.get()]
            while not inbox.empty():
                batch.append(inbox.get_nowait())
            for event in batch:
                if event is None:  # the hub dropped a subscriber that fell CLIENT_BUFFER events behind
                    log.warning("closing a TCP connection: its event subscription fell behind")
                    self.abort()
                    return
                data = event.envelope.get("data")
                if isinstance(data, dict) and data.get("queue") == listener.queue:
                    self.send(event_frame(event))

    # --- end

    async def release(self) -> None:
        await self.server.held.release(self.client, "TCP", self)
        await self.workers.release(self.client, "TCP")


class TcpServer:
    """The listener and its connections, inside one front process (started and closed by the app's lifespan)."""

    def __init__(self, settings: Settings, client: Shards, hub: EventHub) -> None:
        self.settings = settings
        self.client = client
        self.hub = hub
        self.connections: set[TcpConnection] = set()
        self.held = HeldJobs()  # every TCP connection's of this process: a Worker's pool spreads over several
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: TcpConnection(self),
            self.settings.tcp_host,
            self.settings.tcp_port,
            reuse_port=True,
            backlog=1024,
        )
        for sock in self.server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.close()
        await asyncio.sleep(0)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=2.0)
