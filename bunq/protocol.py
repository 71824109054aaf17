"""Every message that crosses a process boundary (front → shard commands, shard → front replies).

Commands are named VerbNoun, replies are nouns. All are frozen, tagged msgspec Structs encoded as
msgpack by `bunq.wire`. Job payloads and results travel as the client's JSON bytes, never decoded.
New fields must get defaults so that mixed versions keep talking during a rolling restart.
"""

from __future__ import annotations

import enum
from typing import Union

import msgspec


class State(enum.StrEnum):
    """Where a job is: the spec's states, `expired` (its ttl passed before it ran), and `removed` (it left
    memory and storage: cancelled, cleaned, obliterated). Decisions on a state match it exhaustively."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"  # in the dead-letter queue
    WAITING_CHILDREN = "waiting-children"
    EXPIRED = "expired"
    REMOVED = "removed"


class DlqReason(enum.StrEnum):
    """Why a job entered the dead-letter queue; the three stall kinds are also `job:stalled`'s reason."""

    MAX_ATTEMPTS_EXCEEDED = "max_attempts_exceeded"
    STALLED = "stalled"  # no heartbeat for stallInterval, or active when its shard stopped
    LOCK_EXPIRED = "lock expired"
    TIMED_OUT = "timed out"
    DISCARDED = "discarded"
    DEPENDENCY_FAILED = "dependency_failed"


class LogLevel(enum.StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


# Bounds (ms) of the latency histograms shards keep and fronts render for Prometheus.
LATENCY_BUCKETS_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)


class NewJob(msgspec.Struct, frozen=True, array_like=True):
    """One validated job as a producer pushed it (the front validated every field)."""

    data: bytes
    priority: int = 0
    delay: int = 0
    max_attempts: int = 3
    backoff: int = 1000
    ttl: int | None = None
    timeout: int | None = None
    unique_key: str | None = None
    job_id: str | None = None
    tags: list[str] = []
    group_id: str | None = None
    lifo: bool = False
    remove_on_complete: bool = False
    remove_on_fail: bool = False
    durable: bool = False
    depends_on: list[str] = []
    repeat: bytes | None = None
    name: str = "default"


class Command(msgspec.Struct, frozen=True, tag=True):
    pass


class AddJobs(Command, frozen=True):
    queue: str
    jobs: list[NewJob]


class PullJobs(Command, frozen=True):
    queue: str
    count: int = 1
    timeout_ms: int = 0
    owner: str | None = None
    lock_ttl: int | None = None


class AckJobs(Command, frozen=True):
    ids: list[str]
    results: list[bytes | None] = []
    tokens: list[str | None] = []


class FailJob(Command, frozen=True):
    id: str
    error: str | None = None
    token: str | None = None


class GetJob(Command, frozen=True):
    id: str


class GetJobState(Command, frozen=True):
    id: str


class GetJobResult(Command, frozen=True):
    id: str


class CancelJob(Command, frozen=True):
    id: str


class GetCounts(Command, frozen=True):
    queue: str


class GetDlq(Command, frozen=True):
    queue: str
    count: int = 100
    offset: int = 0


class Ping(Command, frozen=True):
    pass


class ListQueues(Command, frozen=True):
    pass


class ListJobs(Command, frozen=True):
    queue: str
    state: State | None = None
    limit: int = 1000
    offset: int = 0


class GetPriorityCounts(Command, frozen=True):
    queue: str


class GetQueueConfig(Command, frozen=True):
    queue: str


class PauseQueue(Command, frozen=True):
    queue: str


class ResumeQueue(Command, frozen=True):
    queue: str


class DrainQueue(Command, frozen=True):
    queue: str


class ObliterateQueue(Command, frozen=True):
    queue: str


class CleanQueue(Command, frozen=True):
    queue: str
    grace: int = 0
    state: State | None = None
    limit: int = 1000


class PromoteJobs(Command, frozen=True):
    queue: str
    count: int | None = None


class RetryCompleted(Command, frozen=True):
    queue: str
    id: str | None = None


class RetryDlq(Command, frozen=True):
    queue: str
    id: str | None = None


class PurgeDlq(Command, frozen=True):
    queue: str


class SetRateLimit(Command, frozen=True):
    """`limit` None clears it."""

    queue: str
    limit: int | None


class SetConcurrency(Command, frozen=True):
    queue: str
    limit: int | None


class SetStallConfig(Command, frozen=True):
    queue: str
    stall_interval: int | None = None
    max_stalls: int | None = None
    grace_period: int | None = None


class SetDlqConfig(Command, frozen=True):
    queue: str
    auto_retry: bool | None = None
    max_age: int | None = None
    max_entries: int | None = None
    auto_retry_interval: int | None = None
    max_auto_retries: int | None = None


class GetStats(Command, frozen=True):
    """Totals, per-queue counts, collection sizes, memory and storage of one shard."""

    pass


class Collect(Command, frozen=True):
    """Garbage-collect and compact the shard's structures (`POST /gc`)."""

    pass


class GetHeapStats(Command, frozen=True):
    pass


class ReleaseJobs(Command, frozen=True):
    """Active jobs back to waiting without charging an attempt (their worker's connection closed)."""

    ids: list[str]
    tokens: list[str | None] = []


class UpdateProgress(Command, frozen=True):
    id: str
    progress: int
    message: str | None = None
    token: str | None = None


class GetProgress(Command, frozen=True):
    id: str


class UpdateData(Command, frozen=True):
    id: str
    data: bytes


class ChangePriority(Command, frozen=True):
    id: str
    priority: int


class PromoteJob(Command, frozen=True):
    id: str


class MoveToDelayed(Command, frozen=True):
    id: str
    delay: int
    token: str | None = None


class ChangeDelay(Command, frozen=True):
    id: str
    delay: int


class DiscardJob(Command, frozen=True):
    id: str
    token: str | None = None


class WaitJob(Command, frozen=True):
    id: str
    timeout_ms: int


class GetChildren(Command, frozen=True):
    id: str


class Heartbeat(Command, frozen=True):
    """Heartbeats (and, with `durations`, lock extensions) for several active jobs."""

    ids: list[str]
    tokens: list[str | None] = []
    durations: list[int | None] = []
    extend_only: bool = False


class AddLog(Command, frozen=True):
    id: str
    message: str
    level: LogLevel = LogLevel.INFO


class GetLogs(Command, frozen=True):
    id: str


class ClearLogs(Command, frozen=True):
    id: str


class WatchJob(Command, frozen=True):
    """Shard → shard: tell `parent_id` (on `parent_slot`) when job `id` completes or fails for good."""

    id: str
    parent_id: str
    parent_slot: int


class ResolveDependency(Command, frozen=True):
    """Shard → shard: dependency `dep_id` of `parent_id` completed (with its result) or failed for good."""

    parent_id: str
    dep_id: str
    completed: bool
    result: bytes | None = None
    error: str | None = None


# ---- aggregator commands (cluster-wide registries) ---------------------------------------------


class CronSpec(msgspec.Struct):
    """What defines a cron: the fields of `AddCron`, and the first fields of the aggregator's stored `Cron`."""

    name: str
    queue: str
    data: bytes
    schedule: str | None = None
    repeat_every: int | None = None
    timezone: str = "UTC"
    priority: int = 0
    max_limit: int | None = None


class AddCron(Command, frozen=True):
    spec: CronSpec


class GetCron(Command, frozen=True):
    name: str


class ListCrons(Command, frozen=True):
    pass


class DeleteCron(Command, frozen=True):
    name: str


class AddWebhook(Command, frozen=True):
    url: str
    events: list[str]
    queue: str | None = None
    secret: str | None = None


class ListWebhooks(Command, frozen=True):
    pass


class DeleteWebhook(Command, frozen=True):
    id: str


class SetWebhookEnabled(Command, frozen=True):
    id: str
    enabled: bool


class RegisterWorker(Command, frozen=True):
    name: str | None = None
    queues: list[str] = []
    concurrency: int = 1
    hostname: str | None = None
    pid: int | None = None


class ListWorkers(Command, frozen=True):
    pass


class DeleteWorker(Command, frozen=True):
    id: str


class WorkerHeartbeat(Command, frozen=True):
    id: str


class CheckRate(Command, frozen=True):
    """Count one HTTP request of a client IP against the server-wide rate limit."""

    ip: str


class ReportConnections(Command, frozen=True):
    """A front's open connections now (sent when they change, and as a heartbeat); answered with the
    totals over every front that reported recently."""

    front: str
    tcp: int
    ws: int
    sse: int


AggregatorCommand = Union[  # noqa: UP007
    AddCron, GetCron, ListCrons, DeleteCron, AddWebhook, ListWebhooks, DeleteWebhook, SetWebhookEnabled,
    RegisterWorker, ListWorkers, DeleteWorker, WorkerHeartbeat, Ping, CheckRate, ReportConnections,
]  # fmt: skip


AnyCommand = Union[  # noqa: UP007 - msgspec needs a real Union object here
    AddJobs, PullJobs, AckJobs, FailJob, GetJob, GetJobState, GetJobResult, CancelJob, GetCounts, GetDlq, Ping,
    UpdateProgress, GetProgress, UpdateData, ChangePriority, PromoteJob, MoveToDelayed, ChangeDelay, DiscardJob,
    WaitJob, GetChildren, Heartbeat, AddLog, GetLogs, ClearLogs, WatchJob, ResolveDependency,
    ListQueues, ListJobs, GetPriorityCounts, GetQueueConfig, PauseQueue, ResumeQueue, DrainQueue, ObliterateQueue,
    CleanQueue, PromoteJobs, RetryCompleted, RetryDlq, PurgeDlq, SetRateLimit, SetConcurrency, SetStallConfig,
    SetDlqConfig, GetStats, ReleaseJobs, Collect, GetHeapStats,
]  # fmt: skip


class Reply(msgspec.Struct, frozen=True, tag=True):
    pass


class Done(Reply, frozen=True):
    pass


class Error(Reply, frozen=True):
    code: str
    message: str


class Ids(Reply, frozen=True):
    ids: list[str]


class Jobs(Reply, frozen=True):
    """Jobs rendered as JSON objects, ready to splice into a response body, with their lease tokens."""

    jobs: list[bytes]
    tokens: list[str | None] = []


class JobDoc(Reply, frozen=True):
    job: bytes


class JobState(Reply, frozen=True):
    state: str


class JobResult(Reply, frozen=True):
    found: bool
    result: bytes | None = None


class AckOutcome(Reply, frozen=True):
    """Per-id outcome of AckJobs (and Heartbeat): the ids that were not acked, with the reason for each;
    `missing` names those of them that no job has (404 where one id was asked for)."""

    acked: int
    failed: dict[str, str] = {}
    missing: list[str] = []


class Counts(Reply, frozen=True):
    counts: dict[str, int]


class DlqEntries(Reply, frozen=True):
    entries: list[bytes]
    total: int


class Progress(Reply, frozen=True):
    progress: int
    message: str | None = None


class WaitOutcome(Reply, frozen=True):
    completed: bool
    result: bytes | None = None
    state: str | None = None


class ChildrenValues(Reply, frozen=True):
    values: dict[str, bytes]


class Logs(Reply, frozen=True):
    """Log entries rendered as JSON objects."""

    logs: list[bytes]


class Watched(Reply, frozen=True):
    """The dependency's state when the watch was registered: "watching", "completed", "failed" or "unknown"."""

    state: str
    result: bytes | None = None
    error: str | None = None


class Count(Reply, frozen=True):
    count: int
    ids: list[str] = []


class QueueNames(Reply, frozen=True):
    names: list[str]


class StallConfig(msgspec.Struct, frozen=True, rename="camel"):
    """A queue's stall detection, as `GET /queues/:q/stall-config` renders it."""

    stall_interval: int
    max_stalls: int
    grace_period: int


class DlqConfig(msgspec.Struct, frozen=True, rename="camel"):
    """A queue's dead-letter limits, as `GET /queues/:q/dlq-config` renders it."""

    auto_retry: bool
    auto_retry_interval: int
    max_auto_retries: int
    max_age: int
    max_entries: int


class QueueConfig(Reply, frozen=True):
    paused: bool
    rate_limit: int | None
    concurrency: int | None
    stall: StallConfig
    dlq: DlqConfig


class CronEntry(CronSpec):
    """A registered cron as the aggregator keeps it and answers with it: its spec and its run state."""

    executions: int = 0
    next_run: int = 0
    created_at: int = 0
    last_run: int | None = None


class Crons(Reply, frozen=True):
    crons: list[CronEntry]


class WebhookEntry(msgspec.Struct, frozen=True):
    """A registered webhook as the aggregator answers with it (never its secret)."""

    id: str
    url: str
    events: list[str]
    queue: str | None
    enabled: bool
    created_at: int
    last_triggered: int | None
    success_count: int
    failure_count: int


class Webhooks(Reply, frozen=True):
    webhooks: list[WebhookEntry]


class WorkerEntry(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    queues: list[str]
    concurrency: int
    hostname: str | None
    pid: int | None
    registered_at: int
    last_seen: int
    active_jobs: int
    processed_jobs: int
    failed_jobs: int
    current_job: str | None


class Workers(Reply, frozen=True):
    """Registered workers, and the aggregator's wall clock (ms) they were read at (their uptime's end)."""

    workers: list[WorkerEntry]
    now: int


class ShardStats(Reply, frozen=True):
    shard: int
    totals: dict[str, int]
    queues: dict[str, dict[str, int]]
    collections: dict[str, int]
    rss_bytes: int
    storage_bytes: int
    free_disk_bytes: int
    disk_full: bool = False
    histograms: dict[str, list[int]] = {}  # name → bucket counts (last: +Inf), then count and sum (ms)


class Memory(Reply, frozen=True):
    """Process memory figures, and what a collection freed (`POST /gc`)."""

    before_rss: int
    after_rss: int


class HeapStats(Reply, frozen=True):
    process: str
    rss_bytes: int
    top_types: list[tuple[str, int]]
    collections: dict[str, int]


class RateVerdict(Reply, frozen=True):
    allowed: bool
    retry_after_s: int = 0


class Pong(Reply, frozen=True):
    shard: int
    slots: int


class ConnectionCounts(Reply, frozen=True):
    tcp: int
    ws: int
    sse: int


AnyReply = Union[  # noqa: UP007
    Done, Error, Ids, Jobs, JobDoc, JobState, JobResult, AckOutcome, Counts, DlqEntries, Pong,
    Progress, WaitOutcome, ChildrenValues, Logs, Watched, Count, QueueNames, QueueConfig, Crons, Webhooks, Workers,
    ShardStats, RateVerdict, Memory, HeapStats, ConnectionCounts,
]  # fmt: skip
