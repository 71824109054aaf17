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
