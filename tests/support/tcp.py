"""A raw client of bunqueue's TCP protocol for tests: frames in, frames out, nothing hidden."""

from __future__ import annotations

import socket
import struct
from typing import Any

import msgspec

_decode = msgspec.msgpack.Decoder(ext_hook=lambda code, data: ("ext", code)).decode


class RawTcp:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawTcp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send(self, message: dict[str, Any]) -> str:
        """Send one command with a fresh reqId (unless it has one); returns the reqId."""
        if "reqId" not in message:
            self.seq += 1
            message = {**message, "reqId": f"r{self.seq}"}
        self.send_frame(msgspec.msgpack.encode(message))
        return str(message["reqId"])

    def raw_reply(self) -> bytes:
        """The next frame's payload as sent; ConnectionError once the server has closed."""
        while True:
            if len(self.buffer) >= 4:
                size = struct.unpack(">I", self.buffer[:4])[0]
                if len(self.buffer) >= 4 + size:
                    payload, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
                    return payload
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk

    def reply(self) -> dict[str, Any]:
        message: dict[str, Any] = _decode(self.raw_reply())
        return message

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one command and return its answer (event frames in between are skipped)."""
        req_id = self.send(message)
        while True:
            reply = self.reply()
            if reply.get("reqId") == req_id:
                return reply

    def closed_by_server(self) -> bool:
        try:
            while True:
                self.raw_reply()
        except (ConnectionError, OSError):
            return True


# Bytes of payload that follow each fixed-size msgpack type marker (nil, bools, ints, floats, fixext).
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED |= {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin and str: length width
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # ext: length width, then a type byte
_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # array/map: width, items per entry


def type_markers(raw: bytes) -> list[int]:
    """Every value's msgpack type byte in `raw`, in order, payload bytes skipped (a float's or a string's
    bytes may be anything, so a search of the raw bytes for a marker proves nothing)."""
    markers: list[int] = []
    pos, todo = 0, 1
    while todo:
        todo -= 1
        marker = raw[pos]
        markers.append(marker)
        pos += 1
        if marker <= 0x7F or marker >= 0xE0:  # fixint
            continue
        if 0x80 <= marker <= 0x8F:
            todo += 2 * (marker & 0x0F)
        elif 0x90 <= marker <= 0x9F:
            todo += marker & 0x0F
        elif 0xA0 <= marker <= 0xBF:
            pos += marker & 0x1F
        elif marker in _FIXED:
            pos += _FIXED[marker]
        elif marker in _SIZED:
            width = _SIZED[marker]
            pos += width + int.from_bytes(raw[pos : pos + width], "big")
        elif marker in _EXT:
            width = _EXT[marker]
            pos += width + 1 + int.from_bytes(raw[pos : pos + width], "big")
        elif marker in _CONTAINERS:
            width, per = _CONTAINERS[marker]
            todo += per * int.from_bytes(raw[pos : pos + width], "big")
            pos += width
        else:
            raise ValueError(f"not msgpack: byte {marker:#x} at {pos - 1}")
    if pos != len(raw):
        raise ValueError(f"{len(raw) - pos} bytes after the value")
    return markers
