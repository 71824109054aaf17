"""The TCP frames of bunqueue's protocol: a 4-byte big-endian length, then one MessagePack map.

    +---------------+----------------------------------+
    | length: u32be | MessagePack map (length bytes)   |
    +---------------+----------------------------------+

Two traps of a JavaScript peer are handled here. msgpackr writes `undefined` as extension type 0
(`d4 00 00`); it decodes as `UNDEFINED` and such map entries are dropped, as the absent keys they
stand for. msgpackr reads an integer outside the 32-bit range as a BigInt, on which the TypeScript
client's arithmetic throws, so such integers go out as float64 (exact for every millisecond timestamp).
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_FRAME = 64 * 1024 * 1024
HEADER = 4
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UNDEFINED_EXT = b"\xd4\x00"  # fixext 1 of type 0: how msgpackr writes `undefined`


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = _Undefined()


class FrameTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"Frame too large: {size} bytes exceeds maximum {MAX_FRAME}")
        self.size = size


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == 0:
        return UNDEFINED
    raise msgspec.DecodeError(f"unsupported MessagePack extension type {code}")


_decoder = msgspec.msgpack.Decoder(ext_hook=_ext_hook)
_encoder = msgspec.msgpack.Encoder()


def _defined(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _defined(v) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, list):
        return [None if v is UNDEFINED else _defined(v) for v in value]
    return value


def decode(frame: bytes | memoryview) -> dict[str, Any]:
    """One request; `DecodeError` for anything but a map with string keys."""
    message: Any = _decoder.decode(frame)
    if not isinstance(message, dict) or not all(isinstance(k, str) for k in message):
        raise msgspec.DecodeError("a frame must hold one map")
    if _UNDEFINED_EXT in frame:  # a C-speed scan; a false hit only costs the walk
        return {k: _defined(v) for k, v in message.items() if v is not UNDEFINED}
    return message


_LEAVES = frozenset({str, bool, float, type(None)})  # kept as they are (a bool is not an int here)


def js_safe(value: Any) -> Any:
    """`value` with every integer outside the 32-bit range made a float. Every reply and event goes through
    it, so the common leaves are decided inside the comprehensions instead of by a call each."""
    kind = type(value)
    if kind is dict:
        return {
            k: v if type(v) in _LEAVES or (type(v) is int and _INT32_MIN <= v <= _INT32_MAX) else js_safe(v)
            for k, v in value.items()
        }
    if kind is list:
        return [
            v if type(v) in _LEAVES or (type(v) is int and _INT32_MIN <= v <= _INT32_MAX) else js_safe(v) for v in value
        ]
    if kind is int and not _INT32_MIN <= value <= _INT32_MAX:
        return float(value)
    return value


def encode(message: dict[str, Any]) -> bytes:
    """One reply or event, framed."""
    payload = _encoder.encode(js_safe(message))
    return len(payload).to_bytes(HEADER, "big") + payload


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(HEADER, "big") + payload


class FrameReader:
    """Splits a byte stream into frames; refuses a length over `MAX_FRAME` before buffering its body."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.buffer
        buffer += data
        frames: list[bytes] = []
        offset = 0
        end = len(buffer)
        while end - offset >= HEADER:
            size = int.from_bytes(buffer[offset : offset + HEADER], "big")
            if size > MAX_FRAME:
                buffer.clear()
                raise FrameTooLarge(size)
            if end - offset - HEADER < size:
                break
            frames.append(bytes(buffer[offset + HEADER : offset + HEADER + size]))
            offset += HEADER + size
        if offset:
            del buffer[:offset]
        return frames

    @property
    def partial(self) -> bool:
        return bool(self.buffer)
