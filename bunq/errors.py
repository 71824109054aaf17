"""The exception tree shared by fronts and shards; shards send these back as `Error(code, message)` data.

BunqError (500, "internal")
├── BadRequest (400, "bad_request")
│   ├── InvalidJson (400, "invalid_json")
│   └── PayloadTooLarge (413, "payload_too_large")
├── NotFound (404, "not_found")
├── Unavailable (503, "unavailable")       a shard did not answer in time
└── ConfigError (500, "config")            bad settings at start-up
"""

from __future__ import annotations


class BunqError(Exception):
    code = "internal"
    status = 500

    def __init__(self, message: str = "Internal server error") -> None:
        super().__init__(message)
        self.message = message


class BadRequest(BunqError):
    code = "bad_request"
    status = 400


class InvalidJson(BadRequest):
    code = "invalid_json"

    def __init__(self, message: str = "Invalid JSON body") -> None:
        super().__init__(message)


class PayloadTooLarge(BadRequest):
    code = "payload_too_large"
    status = 413


class RequestTimeout(BadRequest):
    code = "request_timeout"
    status = 408


class NotFound(BunqError):
    code = "not_found"
    status = 404


class Unavailable(BunqError):
    code = "unavailable"
    status = 503


class ConfigError(BunqError):
    code = "config"


DISK_FULL = "Disk full: durable writes are refused until space is freed"  # a shard's refusal, and its status


BY_CODE: dict[str, type[BunqError]] = {
    cls.code: cls
    for cls in (BunqError, BadRequest, InvalidJson, PayloadTooLarge, RequestTimeout, NotFound, Unavailable, ConfigError)
}


def from_code(code: str, message: str) -> BunqError:
    """Rebuild the exception a shard reported as data."""
    return BY_CODE.get(code, BunqError)(message)
