"""bunq's Python SDK: `Client` (blocking) and `AsyncClient` for every operation of the HTTP API, `Worker` to
process a queue, and the typed values and exceptions they use.

It needs only httpx, msgspec and websockets: importing it loads none of the server (no ZeroMQ, SQLite,
uvicorn or Starlette), so producers and workers install and start light.

    from bunq.sdk import Client
    with Client("http://127.0.0.1:6790") as bunq:
        job_id = bunq.push("emails", {"to": "a@example.com"}, priority=5)
"""

from bunq.sdk._base import PushOptions, Retry
from bunq.sdk.active import ActiveJob
from bunq.sdk.aio import AsyncClient
from bunq.sdk.errors import (
    BadRequest,
    BunqError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
)
from bunq.sdk.models import (
    BatchResult,
    Counts,
    Cron,
    DlqConfig,
    DlqEntry,
    Event,
    Job,
    Lease,
    LogEntry,
    Progress,
    StallConfig,
    WaitResult,
    Webhook,
    WorkerInfo,
)
from bunq.sdk.sync import Client
from bunq.sdk.worker import Worker

__all__ = [
    "ActiveJob",
    "AsyncClient",
    "BadRequest",
    "BatchResult",
    "BunqError",
    "Client",
    "Conflict",
    "Counts",
    "Cron",
    "DlqConfig",
    "DlqEntry",
    "Event",
    "Forbidden",
    "Job",
    "Lease",
    "LogEntry",
    "NotFound",
    "PayloadTooLarge",
    "Progress",
    "PushOptions",
    "RateLimited",
    "Retry",
    "ServerError",
    "StallConfig",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "WaitResult",
    "Webhook",
    "Worker",
    "WorkerInfo",
]
