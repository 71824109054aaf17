"""HTTP/1.1 over a bare socket, for tests that pipeline requests or split them across writes."""

from __future__ import annotations

import re
import socket


def read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """`count` responses read off `sock` by their content-length: (head, body) each; nothing may follow them."""
    buffer, responses = b"", []
    while len(responses) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(1 << 16)
            assert chunk, "the connection closed before every response came"
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
        while len(buffer) < length:
            chunk = sock.recv(1 << 16)
            assert chunk, "the connection closed inside a body"
            buffer += chunk
        responses.append((head, buffer[:length]))
        buffer = buffer[length:]
    assert buffer == b""
    return responses
