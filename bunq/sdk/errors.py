"""What a failed call raises: one exception per kind of refusal, each carrying the server's `error` text and
the HTTP status, so that `except NotFound` reads as what it means and `err.error` is what the server said."""

from __future__ import annotations

from typing import Any


class BunqError(Exception):
    """A call the server refused (`status` is its HTTP status) or could not be made at all (`status` 0)."""

    def __init__(self, error: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(error if not status else f"{error} (HTTP {status})")
        self.error = error
        self.status = status
        self.body = body or {}


class BadRequest(BunqError):
    """400: the request was malformed or the job is not in a state the operation accepts."""


class Unauthorized(BunqError):
    """401: no token, or not one of the server's `AUTH_TOKENS`."""


class Forbidden(BunqError):
    """403."""


class NotFound(BunqError):
    """404: no such job, queue entry, cron, webhook or worker."""


class Conflict(BunqError):
    """409."""


class PayloadTooLarge(BunqError):
    """413: the request body is over the server's limit."""


class RateLimited(BunqError):
    """429: over the server's per-client request rate (retried with backoff where the call is safe)."""


class ServerError(BunqError):
    """500 and any other 5xx but 503."""


class Unavailable(ServerError):
    """503: a shard is down or restarting (retried with backoff where the call is safe)."""


class TransportError(BunqError):
    """The server could not be reached, or the connection broke before a reply (status 0)."""


_BY_STATUS: dict[int, type[BunqError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}


def for_status(status: int, error: str, body: dict[str, Any] | None = None) -> BunqError:
    """The exception a reply with this status raises."""
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else BunqError)
    return kind(error, status, body)
