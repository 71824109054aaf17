"""Responses written whole, below ASGI: the head held back to leave with its body (`OneWrite`), the server's
default headers rendered once a second (`DEFAULT_HEAD`), a complete response's bytes (`render`), and a
complete response written straight to the connection in one piece (`write_whole`). Used by the connection
(`bunq.httpconn`) and the edge's hot path (`bunq.fastpath`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.types import Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle


class OneWrite:
    """What a response's cycle writes through: the head (status line and headers) is held back and leaves
    with the body that follows it, in one write. uvicorn writes them apart, which costs a second send
    syscall and, on the client's side, often a second wake-up and read for every response. A head that
    no body follows in the same turn of the loop (a stream whose first chunk is still to come) goes out
    at the end of that turn on its own."""

    __slots__ = ("transport", "loop", "head")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head + data)
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self.head = data
            self.loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class DefaultHead:
    """The server's default headers (uvicorn's `date`, a new list each second) rendered once per list."""

    __slots__ = ("headers", "rendered")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.rendered = b""

    def of(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self.headers:
            self.rendered = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self.headers = headers
        return self.rendered


DEFAULT_HEAD = DefaultHead()
JSON_TYPE = (b"content-type", b"application/json")


def render(
    status: int, default_headers: list[tuple[bytes, bytes]], headers: Iterable[tuple[bytes, bytes]], body: bytes,
    keep_alive: bool,
) -> bytes:  # fmt: skip
    """A complete response's bytes as uvicorn's cycle writes them: the status line, the server's defaults,
    `headers`, the length, `connection: close` where the connection is not kept alive, and the body."""
    head = [STATUS_LINE[status], DEFAULT_HEAD.of(default_headers)]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    head += (b"content-length: %d\r\n" % len(body), b"\r\n" if keep_alive else b"connection: close\r\n\r\n", body)
    return b"".join(head)


def write_whole(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Write a complete response (`headers` besides uvicorn's defaults; `content-length` is added) straight
    to the connection, in one write, when `send` is the send of uvicorn's httptools cycle with nothing in
    the way: the response not begun, writing not paused, the client still there. False, and nothing done,
    otherwise: the caller then sends it the ASGI way.

    What the cycle's two ASGI sends would have done, less what they check of headers that are the hot
    routes' own constants: write the same bytes (the defaults, then `headers`, `connection: close` where the
    connection is not kept alive), mark the response complete and tell the protocol (its next pipelined
    request, its idle deadline). The two sends were about 7% of a front's CPU under single pushes."""
    cycle = getattr(send, "__self__", None)
    if type(cycle) is not RequestResponseCycle or cycle.response_started or cycle.disconnected:
        return False
    writes: object = cycle.transport
    if type(writes) is not OneWrite or writes.head is not None or cycle.flow.write_paused:
        return False
    keep_alive = cycle.keep_alive
    cycle.response_started = cycle.response_complete = True
    cycle.waiting_for_100_continue = False
    writes.transport.write(render(status, cycle.default_headers, headers, body, keep_alive))
    cycle.message_event.set()
    if not keep_alive:
        writes.transport.close()
    cycle.on_response()
    return True
