"""Request validation at the front: every field of the spec checked for type, range and finiteness.

Messages follow the spec ("priority must be an integer", "delay must be at least 0", ...). A job's
`data` is checked to be JSON and then kept as the client's bytes. Every JSON body is checked first as
text: UTF-8, and nested at most `MAX_DEPTH` levels (so no decoder recurses without bound, and no stored
payload can later be returned as bytes that are not JSON).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from bunq.errors import BadRequest, InvalidJson
from bunq.schedules import check_timezone

MAX_DATA_BYTES = 10 * 1024 * 1024
MAX_QUEUE_NAME = 256
MAX_ID_LENGTH = 1024
MAX_STRING = 1024
MAX_LIST = 1000
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
MAX_LONG_POLL_MS = 60_000
MAX_DEPTH = 256  # arrays and objects, counting the body's own; real payloads stay far below

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_QUOTED = re.compile(rb'"[^"]*"')
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_\-.:]+")


class AckBody(msgspec.Struct):
    """An ack as sent: the result stays raw JSON (stored and returned as the worker's bytes)."""

    result: msgspec.Raw = msgspec.Raw()
    token: Any = None
    removeOnComplete: Any = None


class DataBody(msgspec.Struct):
    data: msgspec.Raw = msgspec.Raw()


_ack_decoder = msgspec.json.Decoder(AckBody)
_data_decoder = msgspec.json.Decoder(DataBody)
any_decoder = msgspec.json.Decoder()
encode_json = msgspec.json.Encoder().encode


def queue_name(name: str) -> str:
    if not name:
        raise BadRequest("Queue name is required")
    if len(name) > MAX_QUEUE_NAME:
        raise BadRequest(f"Queue name too long (max {MAX_QUEUE_NAME} characters)")
    if not _QUEUE_NAME.fullmatch(name):
        raise BadRequest("Queue name contains invalid characters")
    return name


def check_text(body: bytes) -> None:
    """Refuse JSON text that is not UTF-8 or nests deeper than `MAX_DEPTH`, before any decoder sees it."""
    try:
        body.decode()
    except UnicodeDecodeError:
        raise InvalidJson() from None
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth_exceeds(body, MAX_DEPTH):
        raise BadRequest(f"JSON nested too deeply (max {MAX_DEPTH} levels)")


def _depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the brackets outside strings nest deeper than `limit`, in C-speed passes over the text.

    Escapes go first (so every quote left delimits a string), then everything but brackets and quotes.
    Dropping two adjacent quotes keeps the others paired (it removes an empty string or an empty gap
    between two), so only strings that hold brackets are left to strip. Each later pass removes every
    innermost pair; what is left after `limit` passes nests deeper than that.
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    shape = body.translate(_BRACKETS, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in shape:
        shape = _QUOTED.sub(b"", shape)
    for _ in range(limit):
        inner = shape.replace(b"()", b"")
        if not inner or len(inner) == len(shape):
            return False  # shallow enough, or malformed (which the decoder reports)
        shape = inner
    return True


def decode_object(body: bytes) -> dict[str, Any]:
    """A JSON object body; an empty body counts as `{}`."""
    if not body.strip():
        return {}
    value = decode_checked(any_decoder, body)
    if not isinstance(value, dict):
        raise BadRequest("Request body must be a JSON object")
    return value


def decode_checked(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    check_text(body)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(_validation_message(str(exc))) from None
    except (msgspec.DecodeError, RecursionError):
        raise InvalidJson() from None


def _validation_message(text: str) -> str:
    if "Expected `object`" in text and " - at " not in text:
        return "Request body must be a JSON object"
    field = re.search(r"at `\$(?:\.jobs\[(\d+)\])?\.(\w+)`", text)
    if "out of range" in text:
        if field is None:
            return "A number in the body is out of range"
        prefix = f"jobs[{field.group(1)}]: " if field.group(1) else ""
        problem = "must be a finite number" if text.startswith("Number") else "is out of range"
        return f"{prefix}{field.group(2)} {problem}"
    if "at `$.jobs`" in text:
        return "jobs must be an array"
    match = re.search(r"at `\$\.jobs\[(\d+)\]`", text)
    if match:
        return f"jobs[{match.group(1)}]: job must be a JSON object"
    return text


def number(name: str, value: Any, lo: int, hi: int, *, integer: bool = False, default: int | None = None) -> int | None:
    """A finite number in [lo, hi]; booleans and strings are refused; None means absent."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadRequest(f"{name} must be a finite number")
        if integer and not value.is_integer():
            raise BadRequest(f"{name} must be an integer")
    if value < lo:
        raise BadRequest(f"{name} must be at least {lo}")
    if value > hi:
        raise BadRequest(f"{name} must be at most {hi}")
    return int(value)


def integer_text(name: str, raw: str, lo: int, hi: int) -> int:
    """An integer written in a query string, in [lo, hi] (ASCII digits only: `int()` takes others)."""
    digits = raw[1:] if raw[:1] in ("-", "+") else raw
    if not (digits.isascii() and digits.isdigit()):
        raise BadRequest(f"{name} must be an integer")
    if len(digits) > 18:
        raise BadRequest(f"{name} must be at least {lo}" if raw[0] == "-" else f"{name} must be at most {hi}")
    return number(name, int(raw), lo, hi, integer=True) or 0


def string(name: str, value: Any, *, max_length: int = MAX_STRING, allow_empty: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if not value and not allow_empty:
        raise BadRequest(f"{name} must not be empty")
    if len(value) > max_length:
        raise BadRequest(f"{name} must be at most {max_length} characters")
    return value


MAX_GROUP_ID = 256
MAX_SAFE_INTEGER = 2**53 - 1


def required_string(name: str, value: Any, *, max_length: int = MAX_STRING) -> str:
    found = string(name, value, max_length=max_length)
    if found is None:
        raise BadRequest(f"{name} is required")
    return found


def group_id(value: Any) -> str:
    """A group named by a group command, checked as bunqueue checks it (a push's `groupId` is any string)."""
    if value is None:
        raise BadRequest("groupId is required")
    if not isinstance(value, str):
        raise BadRequest("groupId must be a string")
    if not value:
        raise BadRequest("groupId must be a non-empty string")
    if len(value) > MAX_GROUP_ID:
        raise BadRequest(f"groupId must be at most {MAX_GROUP_ID} characters")
    if "\0" in value:
        raise BadRequest("groupId must not contain NUL characters")
    return value


def positive_integer(name: str, value: Any) -> int:
    """A whole number from 1 to 2^53 - 1 (JavaScript's safe integers), as bunqueue's group limits take."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 0 < value <= MAX_SAFE_INTEGER:
        raise BadRequest(f"{name} must be a positive safe integer")
    return int(value)


def strings(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name} must be an array of strings")
    if len(value) > MAX_LIST:
        raise BadRequest(f"{name} must have at most {MAX_LIST} entries")
    if any(len(v) > MAX_STRING for v in value):
        raise BadRequest(f"{name} entries must be at most {MAX_STRING} characters")
    return value


def flag(name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean")
    return value


def repeat_spec(raw: msgspec.Raw) -> bytes | None:
    if not raw or bytes(raw) == b"null":
        return None
    try:
        value = any_decoder.decode(raw)
    except msgspec.DecodeError:
        raise BadRequest("repeat is out of range") from None
    if not isinstance(value, dict):
        raise BadRequest("repeat must be an object")
    every = number("repeat.every", value.get("every"), 1, YEAR_MS)
    number("repeat.limit", value.get("limit"), 1, 1_000_000_000, integer=True)
    cron = string("repeat.cron", value.get("cron") if "cron" in value else value.get("pattern"))
    if every is None and cron is None:
        raise BadRequest("repeat needs every or cron")
    if every is not None and cron is not None:
        raise BadRequest("repeat takes every or cron, not both")
    if cron is not None and not _valid_cron(cron):
        raise BadRequest(f"Invalid cron expression: {cron}")
    timezone(string("repeat.tz", value.get("tz")))
    return bytes(raw)


def timezone(name: str | None) -> str | None:
    """An IANA time zone name (None stays None)."""
    if name is not None:
        check_timezone(name)
    return name


def job_data(raw: msgspec.Raw) -> bytes:
    if not raw:
        raise BadRequest("data is required")
    data = bytes(raw)
    if len(data) > MAX_DATA_BYTES:
        raise BadRequest("Job data too large (max 10MB)")
    return data


def data_body(body: bytes) -> bytes:
    """The new payload of `PUT /jobs/:id/data`, kept as the client's JSON bytes."""
    parsed: DataBody = decode_checked(_data_decoder, body or b"{}")
    return job_data(parsed.data)


def ack_body(body: bytes) -> tuple[bytes | None, str | None, bool]:
    """The raw result (None when absent), the lock token of an ack, and whether to drop the job once done."""
    if not body.strip():
        return None, None, False
    parsed: AckBody = decode_checked(_ack_decoder, body)
    token = string("token", parsed.token, max_length=MAX_ID_LENGTH)
    remove = flag("removeOnComplete", parsed.removeOnComplete)
    return (bytes(parsed.result) if parsed.result else None), token, remove


def _valid_cron(expression: str) -> bool:
    from croniter import croniter  # when first needed (see bunq.schedules)

    return bool(croniter.is_valid(expression))
