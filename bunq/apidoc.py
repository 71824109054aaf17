"""The documented shapes of the HTTP API as msgspec types: request bodies with their constraints and defaults,
query parameters, and success replies. The route table names them on each `Operation` (`Doc`), and
`bunq.openapi` turns them into the OpenAPI document with msgspec's JSON Schema.

The handlers still read bodies by hand (`bunq.validation`, for the spec's error messages); the limits here
are the same constants they check against. A reply type lists the fields a reply always or may carry; a
reply may carry more (the document does not forbid extra fields).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from bunq import protocol as p
from bunq import pushes
from bunq.validation import DAY_MS, MAX_ID_LENGTH, MAX_LIST, MAX_LONG_POLL_MS, MAX_QUEUE_NAME, MAX_STRING, YEAR_MS

MAX_WAIT_MS = 600_000
MAX_MESSAGE = 10_000
MAX_NAME = 256
MAX_PAGE = 10_000


def _range(lo: int, hi: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


QueueName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUEUE_NAME, pattern=r"^[A-Za-z0-9_\-.:]+$")]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Ids = Annotated[list[Id], msgspec.Meta(max_length=MAX_LIST)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
Message = Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE)]
Priority = _range(-1_000_000, 1_000_000)
JobStateName = Literal["waiting", "delayed", "active", "completed", "failed", "waiting-children"]
CleanStateName = Literal["waiting", "delayed", "completed", "failed"]

# ---- request bodies ---------------------------------------------------------------------------------

_DEFAULTS = dict(zip(p.NewJob.__struct_fields__[1:], p.NewJob.__struct_defaults__, strict=True))
Window = _range(1, YEAR_MS)


class Dedup(msgspec.Struct):
    ttl: Window | None = None  # type: ignore[valid-type]
    extend: bool = False
    replace: bool = False


_OPTIONS: dict[str, Any] = {
    "parent_id": (Id | None, None),
    "dedup": (Dedup | None, None),
    "debounce_id": (Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING)] | None, None),
    "debounce_ttl": (Window | None, None),
}
NewJob = msgspec.defstruct(
    "NewJob",
    [
        ("data", Any),
        *((f, pushes.RULES[f][0] if f != "repeat" else Any, _DEFAULTS[f]) for f in pushes.FIELDS[1:]),
        *((f, *_OPTIONS.get(f, (bool, False))) for f in pushes.OPTIONS),
        ("attempts", pushes.RULES["max_attempts"][0] | None, None),
    ],
    rename="camel",
)
"""A push: `data` (any JSON, up to 10 MB) and the job's options; the fields are `bunq.pushes`' own. `repeat` is
`{every | cron (or pattern), limit?, tz?}`. Beyond the spec, ws-commands.md's `PUSH` options: `parentId` (the
job becomes that waiting or delayed job's child) with at most one failure policy, `dedup` (needs `uniqueKey`)
and `debounceId` with `debounceTtl`; and `attempts`, the reference's name for `maxAttempts` (read when
`maxAttempts` is absent)."""


class Bulk(msgspec.Struct):
    jobs: Annotated[list[NewJob], msgspec.Meta(max_length=100_000)]  # type: ignore[valid-type]


class PullBatch(msgspec.Struct):
    count: _range(1, 1000)  # type: ignore[valid-type]
    timeout: _range(0, MAX_LONG_POLL_MS) = 0  # type: ignore[valid-type]
    owner: Annotated[str, msgspec.Meta(max_length=MAX_STRING)] | None = None
    lockTtl: _range(1, DAY_MS) | None = None  # type: ignore[valid-type]


class Ack(msgspec.Struct):
    result: Any = None
    token: Id | None = None
    removeOnComplete: bool = False  # drop the job once completed (its result stays readable)


class AckBatch(msgspec.Struct):
    ids: Ids
    results: list[Any] = []
    tokens: list[Id | None] = []
    removeOnCompletes: list[bool] = []


class Fail(msgspec.Struct):
    error: Any = None
    token: Id | None = None
    unrecoverable: bool = False  # straight to the DLQ, whatever attempts are left
    removeOnFail: bool = False  # drop the job instead of dead-lettering it when this failure is its last


class Token(msgspec.Struct):
    token: Id | None = None


class UpdateProgress(msgspec.Struct):
    progress: Annotated[float, msgspec.Meta(ge=0, le=100)]
    message: Message | None = None
    token: Id | None = None


class UpdateData(msgspec.Struct):
    data: Any


class ChangePriority(msgspec.Struct):
    priority: Priority  # type: ignore[valid-type]


class ChangeDelay(msgspec.Struct):
    delay: _range(0, YEAR_MS)  # type: ignore[valid-type]


class MoveToDelayed(msgspec.Struct):
    delay: _range(0, YEAR_MS)  # type: ignore[valid-type]
    token: Id | None = None


class Wait(msgspec.Struct):
    timeout: _range(0, MAX_WAIT_MS) = 30_000  # type: ignore[valid-type]


class Heartbeat(msgspec.Struct):
    token: Id | None = None
    duration: _range(1, DAY_MS) | None = None  # type: ignore[valid-type]


class ExtendLock(msgspec.Struct):
    duration: _range(1, DAY_MS)  # type: ignore[valid-type]
    token: Id | None = None


class HeartbeatBatch(msgspec.Struct):
    ids: Ids
    tokens: list[Id | None] = []
    durations: list[_range(1, DAY_MS) | None] = []  # type: ignore[valid-type]


class AddLog(msgspec.Struct):
    message: Message
    level: p.LogLevel = p.LogLevel.INFO


class Clean(msgspec.Struct):
    grace: _range(0, 10 * YEAR_MS) = 0  # type: ignore[valid-type]
    state: CleanStateName | None = None
    limit: _range(1, 1_000_000) = 1000  # type: ignore[valid-type]


class PromoteJobs(msgspec.Struct):
    count: _range(1, 10_000_000) | None = None  # type: ignore[valid-type]


class RetryCompleted(msgspec.Struct):
    id: Id | None = None


class RetryDlq(msgspec.Struct):
    jobId: Id | None = None
    count: _range(1, 1_000_000_000) | None = None  # type: ignore[valid-type]  # without jobId: the oldest this many


class Limit(msgspec.Struct):
    limit: _range(1, 1_000_000)  # type: ignore[valid-type]


class StallSettings(msgspec.Struct):
    stallInterval: _range(100, DAY_MS) | None = None  # type: ignore[valid-type]
    maxStalls: _range(1, 1000) | None = None  # type: ignore[valid-type]
    gracePeriod: _range(0, DAY_MS) | None = None  # type: ignore[valid-type]
    enabled: bool | None = None  # false: active jobs without a lock are never marked stalled


class DlqSettings(msgspec.Struct):
    autoRetry: bool | None = None
    maxAge: _range(1000, 10 * YEAR_MS) | None = None  # type: ignore[valid-type]
    maxEntries: _range(1, 10_000_000) | None = None  # type: ignore[valid-type]
    autoRetryInterval: _range(100, YEAR_MS) | None = None  # type: ignore[valid-type]
    maxAutoRetries: _range(0, 1000) | None = None  # type: ignore[valid-type]


class AddCron(msgspec.Struct):
    """Either `schedule` (a cron expression) or `repeatEvery` (ms), not both."""

    name: Name
    queue: QueueName
    data: Any
    schedule: Name | None = None
    repeatEvery: _range(1, YEAR_MS) | None = None  # type: ignore[valid-type]
    timezone: str = "UTC"
    priority: Priority = 0  # type: ignore[valid-type]
    maxLimit: _range(1, 1_000_000_000) | None = None  # type: ignore[valid-type]


class AddWebhook(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    events: Ids
    queue: QueueName | None = None
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING)] | None = None


class SetEnabled(msgspec.Struct):
    enabled: bool


class RegisterWorker(msgspec.Struct):
    name: Name | None = None
    queues: Annotated[list[QueueName], msgspec.Meta(max_length=MAX_LIST)] = []
    concurrency: _range(1, 100_000) = 1  # type: ignore[valid-type]
    hostname: Name | None = None
    pid: _range(0, 2**31) | None = None  # type: ignore[valid-type]


class WorkerHeartbeat(msgspec.Struct):
    """The counts a worker reports of itself (optional): they replace those tallied from its pulls."""

    activeJobs: _range(0, 2**53) | None = None  # type: ignore[valid-type]
    processed: _range(0, 2**53) | None = None  # type: ignore[valid-type]
    failed: _range(0, 2**53) | None = None  # type: ignore[valid-type]


# ---- query parameters -------------------------------------------------------------------------------


class PullQuery(msgspec.Struct):
    timeout: _range(0, MAX_LONG_POLL_MS) = 0  # type: ignore[valid-type]
    owner: Annotated[str, msgspec.Meta(max_length=MAX_STRING)] | None = None
    lockTtl: _range(1, DAY_MS) | None = None  # type: ignore[valid-type]


class ListJobsQuery(msgspec.Struct):
    """`states` (comma-separated) lists several states at once; `state` one; `asc` oldest (true) or newest
    (false) first, else each state's own order."""

    state: JobStateName | None = None
    states: Annotated[str, msgspec.Meta(pattern=r"^[a-z,-]*$", max_length=200)] | None = None
    limit: _range(1, MAX_PAGE) = 1000  # type: ignore[valid-type]
    offset: _range(0, 1_000_000_000) = 0  # type: ignore[valid-type]
    asc: bool | None = None


class DlqQuery(msgspec.Struct):
    count: _range(1, MAX_PAGE) = 100  # type: ignore[valid-type]
    limit: _range(1, MAX_PAGE) | None = None  # type: ignore[valid-type]
    offset: _range(0, 1_000_000_000) = 0  # type: ignore[valid-type]


# ---- replies --------------------------------------------------------------------------------------


class Ok(msgspec.Struct):
    ok: bool


class Error(msgspec.Struct):
    """Every refusal: `ok` false and a message (a batch also says which ids failed and why)."""

    ok: bool
    error: str
    count: int | None = None
    failed: dict[str, str] | None = None


class Job(msgspec.Struct):
    """A job as the server renders it (more fields may follow: see the HTTP API spec)."""

    id: str
    queue: str
    name: str
    data: Any
    priority: int
    createdAt: int
    attempts: int
    maxAttempts: int
    runAt: int | None = None
    startedAt: int | None = None
    completedAt: int | None = None
    state: str | None = None
    progress: float | None = None
    tags: list[str] | None = None
    customId: str | None = None
    failedReason: str | None = None


class Pushed(msgspec.Struct):
    ok: bool
    id: str


class PushedMany(msgspec.Struct):
    ok: bool
    ids: list[str]


class Pulled(msgspec.Struct):
    """`job` is null when none was waiting (within `timeout`); `token` comes with an `owner`."""

    ok: bool
    job: Job | None
    token: str | None = None


class PulledMany(msgspec.Struct):
    ok: bool
    jobs: list[Job]
    tokens: list[str | None] | None = None


class Counted(msgspec.Struct):
    ok: bool
    count: int


class OneJob(msgspec.Struct):
    ok: bool
    job: Job


class JobStateReply(msgspec.Struct):
    ok: bool
    id: str
    state: str


class JobResultReply(msgspec.Struct):
    ok: bool
    id: str
    result: Any


class ProgressReply(msgspec.Struct):
    ok: bool
    progress: float
    message: str | None


class WaitReply(msgspec.Struct):
    """`completed` with its `result`, or not (yet) with the job's `state`."""

    ok: bool
    completed: bool
    result: Any = None
    state: str | None = None


class ChildrenData(msgspec.Struct):
    values: dict[str, Any]


class ChildrenReply(msgspec.Struct):
    """`data` repeats `values` in the reference's shape."""

    ok: bool
    values: dict[str, Any]
    data: ChildrenData


class LogsData(msgspec.Struct):
    logs: list[dict[str, Any]]
    count: int


class LogsReply(msgspec.Struct):
    """`data` repeats `logs`, with their count, in the reference's shape."""

    ok: bool
    logs: list[dict[str, Any]]
    data: LogsData


class QueueNames(msgspec.Struct):
    ok: bool
    queues: list[str]


class SummaryCounts(msgspec.Struct):
    waiting: int
    prioritized: int
    active: int
    completed: int
    failed: int
    delayed: int


class QueueSummary(msgspec.Struct):
    """One queue in `GET /queues/summary` (the reference's shape: a bare array, no `ok`), plus bunq's own
    `rateLimit` and `concurrency` (null when unlimited), which the API has no other way to read."""

    name: str
    paused: bool
    counts: SummaryCounts
    rateLimit: int | None = None
    concurrency: int | None = None


class JobList(msgspec.Struct):
    ok: bool
    jobs: list[Job]


class CountsReply(msgspec.Struct):
    ok: bool
    counts: p.QueueCounts


class PriorityCountsReply(msgspec.Struct):
    ok: bool
    queue: str
    counts: dict[str, int]


class PausedReply(msgspec.Struct):
    ok: bool
    paused: bool


class Cleaned(msgspec.Struct):
    ok: bool
    count: int
    ids: list[str]


class DlqReply(msgspec.Struct):
    """`jobs` and `entries` are the same list (both names are in use)."""

    ok: bool
    jobs: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    total: int


class StallConfigReply(msgspec.Struct):
    ok: bool
    config: p.StallConfig


class DlqConfigReply(msgspec.Struct):
    ok: bool
    config: p.DlqConfig


class CronView(msgspec.Struct):
    name: str
    queue: str
    data: msgspec.Raw
    schedule: str | None
    repeatEvery: int | None
    timezone: str
    priority: int
    maxLimit: int | None
    executions: int
    nextRun: int
    lastRun: int | None
    createdAt: int


class CronReply(msgspec.Struct):
    ok: bool
    cron: CronView


class CronList(msgspec.Struct):
    ok: bool
    crons: list[CronView]


class WebhookAdded(msgspec.Struct):
    webhookId: str
    url: str
    events: list[str]
    queue: str | None
    createdAt: int


class WebhookAddedReply(msgspec.Struct):
    ok: bool
    data: WebhookAdded


class Webhook(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    queue: str | None
    enabled: bool
    createdAt: int
    lastTriggered: int | None
    successCount: int
    failureCount: int


class Webhooks(msgspec.Struct):
    webhooks: list[Webhook]
    stats: dict[str, int]


class WebhookList(msgspec.Struct):
    ok: bool
    data: Webhooks


class WebhookState(msgspec.Struct):
    id: str
    enabled: bool


class WebhookEnabledReply(msgspec.Struct):
    ok: bool
    data: WebhookState


class RemovedFlag(msgspec.Struct):
    removed: bool


class Removed(msgspec.Struct):
    ok: bool
    data: RemovedFlag


class Worker(msgspec.Struct):
    id: str
    workerId: str
    name: str | None
    queues: list[str]
    concurrency: int
    hostname: str | None
    pid: int | None
    status: str
    registeredAt: int
    lastSeen: int
    activeJobs: int
    processedJobs: int
    failedJobs: int
    currentJob: str | None
    uptime: int  # milliseconds since it registered


class WorkerReply(msgspec.Struct):
    ok: bool
    data: Worker


class Workers(msgspec.Struct):
    workers: list[Worker]
    stats: dict[str, int]


class WorkerList(msgspec.Struct):
    ok: bool
    data: Workers


class Seen(msgspec.Struct):
    ok: bool
    lastSeen: int


class WorkerSeen(msgspec.Struct):
    ok: bool
    data: Seen


class Pong(msgspec.Struct):
    pong: bool
    time: int


class PingReply(msgspec.Struct):
    ok: bool
    data: Pong


class StatsReply(msgspec.Struct):
    ok: bool
    stats: dict[str, int]
    memory: dict[str, int]
    collections: dict[str, int]


class MetricsReply(msgspec.Struct):
    ok: bool
    metrics: dict[str, int]


class StorageReply(msgspec.Struct):
    ok: bool
    diskFull: bool
    storageBytes: int
    freeDiskBytes: int


class GcReply(msgspec.Struct):
    ok: bool
    before: dict[str, int]
    after: dict[str, int]


class HeapReply(msgspec.Struct):
    ok: bool
    heap: dict[str, int]
    collections: dict[str, int]
    processes: list[dict[str, Any]]


class Health(msgspec.Struct):
    ok: bool
    status: Literal["healthy", "degraded"]
    uptime: int
    version: str
    queues: dict[str, int]
    connections: dict[str, Any]
    memory: dict[str, int]


class Ready(msgspec.Struct):
    ok: bool
    ready: bool
