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

import math
import re
from typing import Any

import msgspec

MAX_FRAME = 64 * 1024 * 1024
MAX_UNAUTHENTICATED_FRAME = 64 * 1024  # before `Auth` (when tokens are set) only session commands are read
HEADER = 4
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UNDEFINED_EXT = b"\xd4\x00"  # fixext 1 of type 0: how msgpackr writes `undefined`
# a float64 or float32 whose exponent bits are all ones (NaN, ±Infinity); a hit inside a string's bytes only
# costs a walk that finds nothing
_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]|\xca[\x7f\xff][\x80-\xff]")


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = _Undefined()


class FrameTooLarge(Exception):
    def __init__(self, size: int, limit: int = MAX_FRAME) -> None:
        super().__init__(f"Frame too large: {size} bytes exceeds maximum {limit}")
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


class NotFinite(ValueError):
    """A request carrying NaN or an infinity, which JSON (every route's body) cannot hold: refused by
    name, as the reference refuses `delay: Infinity`, rather than turned into a default or a null."""

    def __init__(self, path: str, req_id: Any = None) -> None:
        super().__init__(f"{path} must be a finite number")
        self.path = path
        self.req_id = req_id  # the request's, so that its refusal reaches the caller waiting for it


def decode(frame: bytes | memoryview) -> dict[str, Any]:
    """One request; `DecodeError` for anything but a map with string keys (or nested past the recursion
    limit), `NotFinite` for NaN or an infinity anywhere in it."""
    try:
        message: Any = _decoder.decode(frame)
        if not isinstance(message, dict) or not all(isinstance(k, str) for k in message):
            raise msgspec.DecodeError("a frame must hold one map")
        if _UNDEFINED_EXT in frame:  # a C-speed scan; a false hit only costs the walk
            message = {k: _defined(v) for k, v in message.items() if v is not UNDEFINED}
        if _NON_FINITE.search(frame):
            try:
                _check_finite(message, "")
            except NotFinite as exc:
                raise NotFinite(exc.path, message.get("reqId")) from None
    except RecursionError:
        raise msgspec.DecodeError("nested too deeply") from None
    request: dict[str, Any] = message
    return request


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise NotFinite(path or "value")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


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
    """Splits a byte stream into frames; refuses a length over `limit` before buffering its body."""

    __slots__ = ("buffer", "limit")

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.buffer
        buffer += data
        frames: list[bytes] = []
        offset = 0
        end = len(buffer)
        while end - offset >= HEADER:
            size = int.from_bytes(buffer[offset : offset + HEADER], "big")
            if size > self.limit:
                buffer.clear()
                raise FrameTooLarge(size, self.limit)
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
