"""The typed values the SDK returns, decoded straight from the server's JSON by msgspec.

Python names are snake_case; on the wire they are the spec's camelCase (`max_attempts` is `maxAttempts`).
Every field has a default, so a reply from an older or newer server that lacks or adds a field still decodes.
"""

from __future__ import annotations

from typing import Any

import msgspec

JobState = str  # waiting, prioritized, delayed, active, completed, failed, waiting-children, unknown


class Job(msgspec.Struct, rename="camel", kw_only=True):
    """A job as `GET /jobs/:id`, pulls and listings return it."""

    id: str
    queue: str = ""
    name: str = "default"
    data: Any = None
    priority: int = 0
    created_at: int = 0
    run_at: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    attempts: int = 0
    max_attempts: int = 3
    backoff: int = 1000
    ttl: int | None = None
    timeout: int | None = None
    progress: float = 0
    progress_message: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    lifo: bool = False
    remove_on_complete: bool = False
    remove_on_fail: bool = False
    durable: bool = False
    unique_key: str | None = None
    custom_id: str | None = None
    group_id: str | None = None
    depends_on: list[str] = msgspec.field(default_factory=list)
    repeat: dict[str, Any] | None = None
    stall_count: int = 0
    last_heartbeat: int | None = None
    failed_reason: str | None = None
    state: JobState | None = None


class DlqEntry(msgspec.Struct, rename="camel", kw_only=True):
    """A job in a queue's dead letter queue, with why it is there."""

    id: str
    queue: str = ""
    data: Any = None
    attempts: int = 0
    created_at: int = 0
    reason: str | None = None
    error: str | None = None
    entered_at: int | None = None
    job: Job | None = None


class Progress(msgspec.Struct, kw_only=True):
    progress: float = 0
    message: str | None = None


class LogEntry(msgspec.Struct, kw_only=True):
    timestamp: int
    level: str
    message: str


class WaitResult(msgspec.Struct, kw_only=True):
    """`wait`: whether the job completed within the timeout, and its result if it did."""

    completed: bool
    result: Any = None


class BatchResult(msgspec.Struct, kw_only=True):
    """A batch operation (ack, heartbeat): how many ids it applied to, and why each other id was refused."""

    count: int = 0
    failed: dict[str, str] = msgspec.field(default_factory=dict)


class Counts(msgspec.Struct, kw_only=True):
    waiting: int = 0
    prioritized: int = 0
    delayed: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    waiting_children: int = msgspec.field(default=0, name="waiting-children")
    paused: int = 0


class DlqConfig(msgspec.Struct, rename="camel", kw_only=True):
    auto_retry: bool = False
    auto_retry_interval: int = 3_600_000
    max_auto_retries: int = 3
    max_age: int = 604_800_000
    max_entries: int = 10_000


class StallConfig(msgspec.Struct, rename="camel", kw_only=True):
    stall_interval: int = 30_000
    max_stalls: int = 3
    grace_period: int = 5_000
    enabled: bool = True  # False: active jobs without a lock are never marked stalled


class Cron(msgspec.Struct, rename="camel", kw_only=True):
    name: str
    queue: str = ""
    data: Any = None
    schedule: str | None = None
    repeat_every: int | None = None
    timezone: str = "UTC"
    priority: int = 0
    max_limit: int | None = None
    executions: int = 0
    next_run: int | None = None
    last_run: int | None = None
    created_at: int | None = None


class Webhook(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    url: str = ""
    events: list[str] = msgspec.field(default_factory=list)
    queue: str | None = None
    enabled: bool = True
    created_at: int | None = None
    last_triggered: int | None = None
    success_count: int = 0
    failure_count: int = 0


class WorkerInfo(msgspec.Struct, rename="camel", kw_only=True):
    """A worker in the registry, with the job counts its pulls (`owner` = its id) earned it."""

    id: str
    name: str = ""
    queues: list[str] = msgspec.field(default_factory=list)
    concurrency: int = 1
    hostname: str | None = None
    pid: int | None = None
    status: str = "active"
    registered_at: int | None = None
    last_seen: int | None = None
    active_jobs: int = 0
    processed_jobs: int = 0
    failed_jobs: int = 0
    current_job: str | None = None
    uptime: int = 0  # milliseconds since it registered


class Event(msgspec.Struct, kw_only=True):
    """One event of the stream: `event` is its name (`job:completed`), `ts` milliseconds, `data` its payload."""

    event: str
    ts: int = 0
    data: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def queue(self) -> str | None:
        queue = self.data.get("queue")
        return queue if isinstance(queue, str) else None

    @property
    def job_id(self) -> str | None:
        job_id = self.data.get("jobId")
        return job_id if isinstance(job_id, str) else None


class Lease(msgspec.Struct):
    """A pulled job and the lock token (when pulled with an `owner`) its ack, fail and heartbeats carry."""

    job: Job
    token: str | None = None
