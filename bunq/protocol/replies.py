"""Replies: shard or aggregator → front. Named as nouns; `Error(code, message)` is how a failure travels."""

from __future__ import annotations

from typing import Union

import msgspec

from bunq.protocol.commands import CronSpec
from bunq.protocol.states import DlqConfig, FlowPolicy, StallConfig


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


class QueueCounts(msgspec.Struct, frozen=True, rename={"waiting_children": "waiting-children"}):
    """One queue's jobs by state, as `GET /queues/:q/counts` shows them (`paused`: waiting while paused)."""

    waiting: int = 0
    prioritized: int = 0
    delayed: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    waiting_children: int = 0
    paused: int = 0

    def live(self) -> int:
        """The jobs still to finish (waiting, delayed, active, waiting for children): `GET /queues/:q/count`,
        whose example in the spec (192) is its counts example's waiting + active + delayed."""
        return self.waiting + self.delayed + self.active + self.waiting_children


class Counts(Reply, frozen=True):
    counts: QueueCounts


class PriorityCounts(Reply, frozen=True):
    counts: dict[str, int]  # priority (as text, highest first) → waiting jobs


class DlqEntries(Reply, frozen=True):
    entries: list[bytes]
    total: int


class Progress(Reply, frozen=True):
    progress: int | float
    message: str | None = None


class WaitOutcome(Reply, frozen=True):
    completed: bool
    result: bytes | None = None
    state: str | None = None


class ChildrenValues(Reply, frozen=True):
    values: dict[str, bytes]


class Failures(Reply, frozen=True):
    """A flow parent's kept child failures: "queue:id" → error."""

    values: dict[str, str]


class Logs(Reply, frozen=True):
    """Log entries rendered as JSON objects."""

    logs: list[bytes]


class Watched(Reply, frozen=True):
    """The dependency's state when the watch was registered: "watching", "completed", "failed" or "unknown"."""

    state: str
    result: bytes | None = None
    error: str | None = None
    policy: FlowPolicy | None = None  # a failed flow child's, when the watcher is its parent
    queue: str = ""


class Count(Reply, frozen=True):
    count: int
    ids: list[str] = []


class Changed(Reply, frozen=True):
    """Whether a command changed anything (a group paused that was not, a limit removed that was set)."""

    changed: bool


class GroupInfo(Reply, frozen=True):
    queued: int  # waiting and delayed
    active: int
    paused: bool
    concurrency: int | None
    rate_limit: tuple[int, int] | None  # (max, duration ms)
    rate_limit_ttl: int  # ms until the group may start jobs again; -2 without a window or hold in force


class QueueNames(Reply, frozen=True):
    names: list[str]


class QueueConfig(Reply, frozen=True):
    paused: bool
    rate_limit: int | None
    concurrency: int | None
    stall: StallConfig
    dlq: DlqConfig


class QueueLimits(Reply, frozen=True):
    """A queue's limits now: `rate_limit_ttl` is -2 with no rate limit, 0 while its window has room, else the
    ms until a pull fits in it again; `maxed` is whether its active jobs fill the concurrency limit."""

    rate_limit: int | None
    rate_limit_ttl: int
    concurrency: int | None
    maxed: bool
    rate_window: int = 1000  # ms: the rate limit is jobs per this window


class DlqStats(Reply, frozen=True):
    """A queue's DLQ by reason (bunq's `DlqReason` values), with its auto-retries that are due and not run
    yet, its entries past maxAge that the sweep has not removed yet, and when the oldest and newest entered."""

    total: int
    by_reason: dict[str, int]
    pending_retry: int
    expired: int
    oldest: int | None
    newest: int | None


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
    queues: dict[str, QueueCounts]
    collections: dict[str, int]
    rss_bytes: int
    storage_bytes: int
    free_disk_bytes: int
    disk_full: bool = False
    histograms: dict[str, list[int]] = {}  # name → bucket counts (last: +Inf), then count and sum (ms)
    events_dropped: int = 0  # events its socket refused (no subscriber keeping up), since it started
    paused: list[str] = []  # its paused queues


class AggregatorStats(Reply, frozen=True):
    events_dropped: int  # events it published or forwarded that its socket refused, since it started
    crons: int = 0
    webhooks: int = 0
    webhooks_enabled: int = 0
    workers: int = 0
    worker_active_jobs: int = 0  # as the workers' heartbeats last reported them
    worker_slots: int = 0  # the registered workers' concurrency, summed
    workers_processed: int = 0
    workers_failed: int = 0
    connections: ConnectionCounts | None = None  # every front's, as they last reported them
    rates: dict[str, float] = {}  # pushPerSec, pullPerSec, completePerSec, failPerSec over its last snapshot


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
    http: int = 0


AnyReply = Union[  # noqa: UP007
    Done, Error, Ids, Jobs, JobDoc, JobState, JobResult, AckOutcome, Counts, PriorityCounts, DlqEntries, Pong,
    Progress, WaitOutcome, ChildrenValues, Failures, Logs, Watched, Count, QueueNames, QueueConfig, Crons, Webhooks,
    Workers,
    ShardStats, RateVerdict, Memory, HeapStats, ConnectionCounts, AggregatorStats, QueueLimits, DlqStats, Changed,
    GroupInfo,
]  # fmt: skip
