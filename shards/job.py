"""The job record a shard keeps in memory and stores as one msgpack blob; and its JSON view for clients."""

from __future__ import annotations

from typing import Any

import msgspec

from bunq.protocol import DlqReason, FlowPolicy, State

# Module-level aliases for the per-job paths only (engine transitions, leases, the bulk sweep): on
# CPython 3.11 `State.WAITING` goes through the enum class's attribute lookup and costs ~55 ns more
# than reading a global (timeit: 11 vs 68 ns per assignment in a loop), several times per job on push,
# pull and ack. Everywhere else reads `State.X`.
WAITING = State.WAITING
DELAYED = State.DELAYED
ACTIVE = State.ACTIVE
COMPLETED = State.COMPLETED
FAILED = State.FAILED
WAITING_CHILDREN = State.WAITING_CHILDREN
EXPIRED = State.EXPIRED
REMOVED = State.REMOVED
REMOVED_UNFINISHED = "Removed before it completed"  # what the jobs waiting for a cancelled one are told


class Hold(msgspec.Struct, array_like=True, gc=False):
    """How long a job's keys hold (the `dedup` and debounce push options): its `unique_key` until
    `dedup_until` (None: while the job is live), its debounce key until `debounce_until`."""

    dedup_until: int | None = None
    debounce_id: str | None = None
    debounce_until: int | None = None


class FlowLinks(msgspec.Struct, array_like=True, gc=False):
    """A job's place in a flow (PUSHF, UpdateParent, a push with `parentId`): one slot on the job, None for
    the jobs (nearly all) that are in none, read and written through `Job`'s properties of the same names."""

    parent_id: str | None = None  # its flow parent
    children_ids: tuple[str, ...] = ()  # a flow parent's children, as declared
    flow_policy: FlowPolicy | None = None  # what its failure for good does to its parent
    failed_children: dict[str, str] | None = None  # "queue:id" → error of children it went on without
    ignored_failures: dict[str, str] | None = None  # "queue:id" → error of children whose failure it ignored


_NO_FLOW = FlowLinks()


def _flow_field(name: str) -> property:
    def get(job: Job) -> Any:
        return getattr(job.flow or _NO_FLOW, name)

    def put(job: Job, value: Any) -> None:
        if job.flow is None:
            if value == getattr(_NO_FLOW, name):
                return
            job.flow = FlowLinks()
        setattr(job.flow, name, value)

    return property(get, put)


class Job(msgspec.Struct, array_like=True, gc=False):
    """A job's whole state. Mutable: handlers change it in place and hand it to the journal.

    It holds no list or dict that the garbage collector tracks (sequences are tuples, `children` is None
    until a child reports): a shard keeps millions of jobs, and every tracked container among them would
    be walked by each full collection, stalling the loop for the length of the walk and costing its
    memory. A sequence that changes is replaced whole; it changes rarely (dependencies, watchers)."""

    id: str
    queue: str
    slot: int
    data: bytes
    priority: int = 0
    created_at: int = 0
    run_at: int = 0
    attempts: int = 0
    max_attempts: int = 3
    backoff: int = 1000
    ttl: int | None = None
    timeout: int | None = None
    unique_key: str | None = None
    custom_id: str | None = None
    tags: tuple[str, ...] = ()
    group_id: str | None = None
    lifo: bool = False
    remove_on_complete: bool = False
    remove_on_fail: bool = False
    durable: bool = False
    depends_on: tuple[str, ...] = ()
    repeat: bytes | None = None
    name: str = "default"
    state: State = State.WAITING
    seq: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    progress: int | float = 0
    progress_message: str | None = None
    failed_reason: str | None = None
    result: bytes | None = None
    token: str | None = None
    owner: str | None = None
    lock_expires_at: int | None = None
    stall_count: int = 0
    last_heartbeat: int | None = None
    dlq_entered_at: int | None = None
    dlq_reason: DlqReason | None = None
    lock_ttl: int | None = None
    pending_deps: tuple[str, ...] = ()
    children: dict[str, bytes | None] | None = None  # child id → its result, once children report
    dependents: tuple[tuple[str, int], ...] = ()
    repeat_count: int = 0
    auto_retries: int = 0
    flow: FlowLinks | None = None  # its flow links; one slot, not five, on every job
    hold: Hold | None = None  # a window on its keys (pushed with `dedup.ttl` or a debounce key)

    parent_id = _flow_field("parent_id")
    children_ids = _flow_field("children_ids")
    flow_policy = _flow_field("flow_policy")
    failed_children = _flow_field("failed_children")
    ignored_failures = _flow_field("ignored_failures")


def reset_runs(job: Job) -> None:
    """Forget what the job's runs left on it (attempts, stalls, times, outcome, progress, DLQ entry): it
    runs again from scratch."""
    job.attempts = 0
    job.stall_count = 0
    job.started_at = None
    job.completed_at = None
    job.failed_reason = None
    job.result = None
    job.progress = 0
    job.progress_message = None
    job.dlq_entered_at = None
    job.dlq_reason = None


class JobView(msgspec.Struct, omit_defaults=False):
    """The client-facing JSON shape of a job (the spec's fields first, then the reference's extras)."""

    id: str
    queue: str
    name: str
    data: msgspec.Raw
    priority: int
    createdAt: int
    runAt: int
    startedAt: int | None
    completedAt: int | None
    attempts: int
    maxAttempts: int
    backoff: int
    ttl: int | None
    timeout: int | None
    progress: int | float
    progressMessage: str | None
    tags: tuple[str, ...]
    lifo: bool
    removeOnComplete: bool
    removeOnFail: bool
    durable: bool
    uniqueKey: str | None
    customId: str | None
    groupId: str | None
    dependsOn: tuple[str, ...]
    repeat: msgspec.Raw | None
    stallCount: int
    lastHeartbeat: int | None
    failedReason: str | None
    state: str
    childrenPending: tuple[str, ...]
    repeatCount: int
    parentId: str | None
    childrenIds: tuple[str, ...]


class DlqEntryView(msgspec.Struct):
    """A DLQ entry: the spec's flat fields plus the reference's nested `job` and retry fields (the front
    also renders it in the reference's entry shape, `bunq.routes.queues.reference_entry`)."""

    id: str
    queue: str
    data: msgspec.Raw
    attempts: int
    createdAt: int
    reason: DlqReason | None
    error: str | None
    enteredAt: int | None
    failedAt: int | None
    job: msgspec.Raw
    retryCount: int
    nextRetryAt: int | None
    expiresAt: int | None


_json = msgspec.json.Encoder()


def view(job: Job) -> JobView:
    # positional, in JobView's field order: a third of the keyword call's cost, on every job pulled or listed;
    # the flow links read from their slot, not through the properties (a call each)
    flow = job.flow or _NO_FLOW
    return JobView(
        job.id,
        job.queue,
        job.name,
        msgspec.Raw(job.data),
        job.priority,
        job.created_at,
        job.run_at,
        job.started_at,
        job.completed_at,
        job.attempts,
        job.max_attempts,
        job.backoff,
        job.ttl,
        job.timeout,
        job.progress,
        job.progress_message,
        job.tags,
        job.lifo,
        job.remove_on_complete,
        job.remove_on_fail,
        job.durable,
        job.unique_key,
        job.custom_id,
        job.group_id,
        job.depends_on,
        msgspec.Raw(job.repeat) if job.repeat is not None else None,
        job.stall_count,
        job.last_heartbeat,
        job.failed_reason,
        job.state,
        job.pending_deps,
        job.repeat_count,
        flow.parent_id,
        flow.children_ids,
    )


def render(job: Job) -> bytes:
    """The job as a JSON object, its payload spliced in as the producer's bytes."""
    return _json.encode(view(job))


def render_dlq_entry(job: Job, next_retry_at: int | None, expires_at: int | None) -> bytes:
    return _json.encode(
        DlqEntryView(
            id=job.id,
            queue=job.queue,
            data=msgspec.Raw(job.data),
            attempts=job.attempts,
            createdAt=job.created_at,
            reason=job.dlq_reason,
            error=job.failed_reason,
            enteredAt=job.dlq_entered_at,
            failedAt=job.dlq_entered_at,
            job=msgspec.Raw(render(job)),
            retryCount=job.auto_retries,
            nextRetryAt=next_retry_at,
            expiresAt=expires_at,
        )
    )


_blob_encoder = msgspec.msgpack.Encoder()
_blob_decoder = msgspec.msgpack.Decoder(Job)


def to_blob(job: Job) -> bytes:
    return _blob_encoder.encode(job)


def from_blob(blob: bytes) -> Job:
    return _blob_decoder.decode(blob)
