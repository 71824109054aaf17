"""Commands: front → shard (the job path, queues, stats) and front → aggregator (crons, webhooks, workers,
rate limits, connection counts). Named VerbNoun."""

from __future__ import annotations

from typing import Union

import msgspec

from bunq.protocol.states import FlowPolicy, LogLevel, State


class PushOptions(msgspec.Struct, frozen=True, array_like=True):
    """A push's options beyond the spec (ws-commands.md's `PUSH` fields): the flow parent it becomes a child
    of and what its failure for good does to that parent; the window during which its `unique_key` holds
    (`dedup.ttl`) and what a duplicate does (`extend` the holder's window, `replace` the holder); and its
    debounce key. A plain push has none (`NewJob.options` is None), so nothing on its path looks at them."""

    parent_id: str | None = None
    parent_slot: int = 0  # the parent's queue's slot: where the child's outcome is sent
    policy: FlowPolicy | None = None
    dedup_ttl: int | None = None
    dedup_extend: bool = False
    dedup_replace: bool = False
    debounce_id: str | None = None
    debounce_ttl: int | None = None


class NewJob(msgspec.Struct, frozen=True, array_like=True):
    """A validated push: the one list of a push's fields (`bunq.pushes` reads bodies by it). The stored
    `Job` is declared apart: its positional layout is what the database holds."""

    data: bytes
    priority: int = 0
    delay: int = 0
    max_attempts: int = 3
    backoff: int = 1000
    ttl: int | None = None
    timeout: int | None = None
    unique_key: str | None = None
    job_id: str | None = None
    tags: tuple[str, ...] = ()
    group_id: str | None = None
    lifo: bool = False
    remove_on_complete: bool = False
    remove_on_fail: bool = False
    durable: bool = False
    depends_on: tuple[str, ...] = ()
    repeat: bytes | None = None
    name: str = "default"
    id: str | None = None  # made by the front for its slot when `job_id` is None (else the shard makes one)
    options: PushOptions | None = None


class Command(msgspec.Struct, frozen=True, tag=True):
    pass


class AddJobs(Command, frozen=True):
    queue: str
    jobs: list[NewJob]
    options: bool = False  # some job carries `PushOptions`: only then does the shard read them


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
    remove: list[bool] = []  # per id: drop the job once completed (removeOnComplete for this ack)


class FailJob(Command, frozen=True):
    id: str
    error: str | None = None
    token: str | None = None
    unrecoverable: bool = False  # straight to the DLQ, whatever attempts are left (bunqueue's UnrecoverableError)
    remove_on_fail: bool = False  # drop the job instead of dead-lettering it when this failure is its last


class GetJob(Command, frozen=True):
    id: str


class GetJobState(Command, frozen=True):
    id: str


class GetJobResult(Command, frozen=True):
    id: str


class CancelJob(Command, frozen=True):
    id: str
    parent_policy: FlowPolicy | None = None  # what its flow parent does (a write undone: REMOVE, it never was)


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
    asc: bool | None = None  # True: oldest first, False: newest first, None: each state's own order


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
    count: int | None = None  # without an id: at most this many, oldest first (None: all)


class PurgeDlq(Command, frozen=True):
    queue: str


class SetRateLimit(Command, frozen=True):
    """`limit` None clears it."""

    queue: str
    limit: int | None


class SetConcurrency(Command, frozen=True):
    queue: str
    limit: int | None


class GetGroup(Command, frozen=True):
    """A group's queued and active jobs, its own limits and its rate window (`GroupInfo`)."""

    queue: str
    group: str
    max_jobs: int | None = None  # `rate_limit_ttl` is 0 while the window has started fewer than this


class CountGroupedJobs(Command, frozen=True):
    """Waiting and delayed jobs of a queue that belong to a group, any group (`Count`)."""

    queue: str


class PauseGroup(Command, frozen=True):
    queue: str
    group: str


class ResumeGroup(Command, frozen=True):
    queue: str
    group: str


class SetGroupConcurrency(Command, frozen=True):
    """`concurrency` None removes it (the group runs one job at a time again)."""

    queue: str
    group: str
    concurrency: int | None


class SetGroupRateLimit(Command, frozen=True):
    """At most `max` of the group's jobs start per window of `duration` ms; `max` None removes it."""

    queue: str
    group: str
    max: int | None
    duration: int = 0


class RateLimitGroup(Command, frozen=True):
    """None of the group's jobs start for the next `duration` ms."""

    queue: str
    group: str
    duration: int


class SetStallConfig(Command, frozen=True):
    queue: str
    stall_interval: int | None = None
    max_stalls: int | None = None
    grace_period: int | None = None
    enabled: bool | None = None


class SetDlqConfig(Command, frozen=True):
    queue: str
    auto_retry: bool | None = None
    max_age: int | None = None
    max_entries: int | None = None
    auto_retry_interval: int | None = None
    max_auto_retries: int | None = None


class GetQueueLimits(Command, frozen=True):
    """A queue's limits and where it stands against them; `max_jobs` replaces the rate limit as the count
    that makes its window full (bunqueue's `getRateLimitTtl(maxJobs)`)."""

    queue: str
    max_jobs: int | None = None


class GetDlqStats(Command, frozen=True):
    queue: str


class RemoveDlqJob(Command, frozen=True):
    """One dead-lettered job of `queue` removed for good (not retried)."""

    queue: str
    id: str


class GetDeduplicationJobId(Command, frozen=True):
    """The live job of `queue` holding unique key `key`."""

    queue: str
    key: str


class RemoveDeduplicationKey(Command, frozen=True):
    """Free unique key `key` of `queue`: a new push with it is accepted; the job that held it stays."""

    queue: str
    key: str


class RemoveJobDeduplicationKey(Command, frozen=True):
    """Free the unique key job `id` holds."""

    id: str


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
    progress: int | float  # as the worker sent it: 50.5 stays 50.5
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
    """Shard → shard: dependency `dep_id` of `parent_id` completed (with its result) or failed for good; a
    flow child's failure carries its policy (and queue, which names it in the parent's failure lists)."""

    parent_id: str
    dep_id: str
    completed: bool
    result: bytes | None = None
    error: str | None = None
    policy: FlowPolicy | None = None
    dep_queue: str = ""


# ---- flows (bunqueue's FlowProducer: parents and children) -------------------------------------


class FlowJob(msgspec.Struct, frozen=True, array_like=True):
    """One job of an atomic flow: the push, its links, and the parents to tell when it finishes (known
    before any of them exists, so no watch has to find it first)."""

    queue: str
    job: NewJob
    parent_id: str | None = None
    children_ids: tuple[str, ...] = ()
    policy: FlowPolicy | None = None
    dependents: tuple[tuple[str, int], ...] = ()


class AddFlow(Command, frozen=True):
    """This shard's jobs of a flow, dependencies before their dependents: all are created or none."""

    jobs: list[FlowJob]


class FindJobs(Command, frozen=True):
    """Which of `ids` this shard holds (live, finished, or a kept result)."""

    ids: list[str]


class LinkChild(Command, frozen=True):
    """On the parent's shard: `child_id` becomes a child the parent waits for (UpdateParent)."""

    parent_id: str
    child_id: str


class SetParent(Command, frozen=True):
    """On the child's shard: record its parent (UpdateParent), which its completion is then told to."""

    child_id: str
    parent_id: str
    parent_slot: int


class DetachChild(Command, frozen=True):
    """On the parent's shard: stop waiting for `child_id` (RemoveChildDependency); answered `Count(1)` when
    the parent was waiting for it, `Count(0)` otherwise."""

    parent_id: str
    child_id: str


class ClearParent(Command, frozen=True):
    """On the child's shard: the child no longer has the parent (after `DetachChild`)."""

    child_id: str
    parent_id: str


class RemoveUnprocessed(Command, frozen=True):
    """On the child's shard: remove the child of `parent_id` if it has not started (waiting, delayed or
    waiting for its own children); the parent stops waiting for it."""

    id: str
    parent_id: str


class GetFlowFailures(Command, frozen=True):
    """A parent's failed children that let it go on (`ignored`: those whose failure was ignored)."""

    id: str
    ignored: bool = False


class MoveToWaitingChildren(Command, frozen=True):
    """An active job (its lease token) waits for children again; it runs once those it has finish."""

    id: str
    token: str | None = None


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
    id: str | None = None  # the client's own worker id (bunqueue's clients send `workerId`)


class ListWorkers(Command, frozen=True):
    pass


class DeleteWorker(Command, frozen=True):
    id: str


class WorkerHeartbeat(Command, frozen=True):
    """A worker's heartbeat; the counts it reports of itself (bunqueue's `Heartbeat`), when it sends them,
    replace the ones the shards' tallies made."""

    id: str
    active_jobs: int | None = None
    processed: int | None = None
    failed: int | None = None


class CheckRate(Command, frozen=True):
    """Count one HTTP request of a client IP against the server-wide rate limit."""

    ip: str


class ReportConnections(Command, frozen=True):
    """A front's open connections now (sent when they change, and as a heartbeat); answered with the
    totals over every front that reported recently."""

    front: str
    tcp: int  # bunqueue-protocol clients
    ws: int
    sse: int
    http: int = 0  # HTTP connections (keep-alive included), the upgraded ones left out


class GetAggregatorStats(Command, frozen=True):
    """The aggregator's own figures (answered by its server, not its registries)."""


AggregatorCommand = Union[  # noqa: UP007
    AddCron, GetCron, ListCrons, DeleteCron, AddWebhook, ListWebhooks, DeleteWebhook, SetWebhookEnabled,
    RegisterWorker, ListWorkers, DeleteWorker, WorkerHeartbeat, Ping, CheckRate, ReportConnections,
    GetAggregatorStats,
]  # fmt: skip


AnyCommand = Union[  # noqa: UP007 - msgspec needs a real Union object here
    AddJobs, PullJobs, AckJobs, FailJob, GetJob, GetJobState, GetJobResult, CancelJob, GetCounts, GetDlq, Ping,
    UpdateProgress, GetProgress, UpdateData, ChangePriority, PromoteJob, MoveToDelayed, ChangeDelay, DiscardJob,
    WaitJob, GetChildren, Heartbeat, AddLog, GetLogs, ClearLogs, WatchJob, ResolveDependency,
    AddFlow, FindJobs, LinkChild, SetParent, DetachChild, ClearParent, RemoveUnprocessed, GetFlowFailures,
    MoveToWaitingChildren,
    ListQueues, ListJobs, GetPriorityCounts, GetQueueConfig, PauseQueue, ResumeQueue, DrainQueue, ObliterateQueue,
    CleanQueue, PromoteJobs, RetryCompleted, RetryDlq, PurgeDlq, SetRateLimit, SetConcurrency, SetStallConfig,
    SetDlqConfig, GetStats, ReleaseJobs, Collect, GetHeapStats, GetQueueLimits, GetDlqStats, RemoveDlqJob,
    GetDeduplicationJobId, RemoveDeduplicationKey, RemoveJobDeduplicationKey,
    SetDlqConfig, GetStats, ReleaseJobs, Collect, GetHeapStats, GetGroup, CountGroupedJobs, PauseGroup, ResumeGroup,
    SetGroupConcurrency, SetGroupRateLimit, RateLimitGroup,
]  # fmt: skip
