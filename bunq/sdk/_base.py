"""What `AsyncClient` and `Client` share: the push options, how a reply becomes a value or an exception, and
when a failed call is tried again."""

from __future__ import annotations

import random
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote, urlencode

import msgspec

from bunq.sdk.errors import BunqError, for_status

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:6790"
USER_AGENT = "bunq-sdk/0.1"
URL_CACHE = 256  # parsed URLs a client keeps
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


class PushOptions(TypedDict, total=False):
    """Every option a push takes (the spec's fields, snake_case). Durations are milliseconds."""

    priority: int
    delay: int
    max_attempts: int
    backoff: int
    ttl: int
    timeout: int
    unique_key: str
    job_id: str
    tags: list[str]
    group_id: str
    lifo: bool
    remove_on_complete: bool
    remove_on_fail: bool
    durable: bool
    depends_on: list[str]
    repeat: dict[str, Any]
    name: str


WIRE_NAMES = {
    "priority": "priority",
    "delay": "delay",
    "max_attempts": "maxAttempts",
    "backoff": "backoff",
    "ttl": "ttl",
    "timeout": "timeout",
    "unique_key": "uniqueKey",
    "job_id": "jobId",
    "tags": "tags",
    "group_id": "groupId",
    "lifo": "lifo",
    "remove_on_complete": "removeOnComplete",
    "remove_on_fail": "removeOnFail",
    "durable": "durable",
    "depends_on": "dependsOn",
    "repeat": "repeat",
    "name": "name",
}


def job_body(data: Any, options: PushOptions | dict[str, Any]) -> dict[str, Any]:
    """A push's JSON body: `data` and the options that were given, under their wire names (a key already in
    wire form passes through, so bulk items can be written either way)."""
    body: dict[str, Any] = {"data": data}
    for key, value in options.items():
        if value is not None:
            body[WIRE_NAMES.get(key, key)] = value
    return body


def bulk_item(item: Any) -> dict[str, Any]:
    """One entry of a bulk push: a mapping with `data` and options (either spelling)."""
    if not isinstance(item, dict) or "data" not in item:
        raise TypeError("each bulk job must be a dict with a 'data' key")
    options = {k: v for k, v in item.items() if k != "data"}
    return job_body(item["data"], options)


def headers(token: str | None, json: bool) -> dict[str, str]:
    """Every request's headers (the JSON content type when it has a body)."""
    out = {"user-agent": USER_AGENT, "accept": "application/json"}
    if token:
        out["authorization"] = f"Bearer {token}"
    if json:
        out["content-type"] = "application/json"
    return out


def query(params: dict[str, Any] | None) -> str:
    """`?a=1&b=x` of the parameters that are set, or nothing."""
    if not params:
        return ""
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(given) if given else ""


def timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def segment(value: str) -> str:
    """A path segment: ids, names and queues may hold characters a URL would misread."""
    return quote(value, safe="")


def encode(body: Any) -> bytes:
    return _json_encode(body)


def reply(status: int, content: bytes, batch: bool = False) -> dict[str, Any]:
    """The decoded reply of a successful call; any other raises the exception for its status. With `batch`, a
    400 that lists the refused ids (`failed`) is a partial success and returned as it is."""
    try:
        body = _json_decode(content) if content else {}
    except msgspec.DecodeError:
        body = {"error": content[:200].decode(errors="replace")}
    if not isinstance(body, dict):
        body = {"value": body}
    if status < 400 and body.get("ok", True) is not False:
        return body
    if batch and status == 400 and isinstance(body.get("failed"), dict):
        return body
    error = body.get("error")
    raise for_status(status or 500, error if isinstance(error, str) else f"HTTP {status}", body)


def convert(value: Any, kind: type[T]) -> T:
    return msgspec.convert(value, kind)


class Retry:
    """Which failed calls are tried again and after how long: a 429 always (the server refused it before doing
    anything); a 503 or a broken connection only for calls that are safe to repeat; a refused connection
    always (nothing was sent). Exponential backoff with jitter, honouring `Retry-After`."""

    def __init__(self, attempts: int = 4, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self.attempts = attempts
        self.base_s = base_s
        self.cap_s = cap_s

    def delay(self, attempt: int, error: BunqError, safe: bool, sent: bool, retry_after: str | None) -> float | None:
        """Seconds to wait before try `attempt + 1`, or None to give up and raise."""
        retriable = error.status == 429 or not sent or (safe and error.status in (0, 503))
        if not retriable or attempt + 1 >= self.attempts:
            return None
        if retry_after is not None and retry_after.isdigit():
            return min(float(retry_after), self.cap_s)
        wait: float = min(self.cap_s, self.base_s * 2**attempt)
        return wait * (0.5 + random.random() / 2)
