"""The closed sets of values the messages carry (job states, DLQ reasons, log levels), a queue's stall
and DLQ settings, and the latency histogram buckets every process shares."""

from __future__ import annotations

import enum

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
    UNRECOVERABLE = "unrecoverable"  # the worker said no retry can succeed


class FlowPolicy(enum.StrEnum):
    """What a flow child that fails for good does to its parent (bunqueue's `failParentOnFailure`, ...).
    Without one, the parent goes to the DLQ, as with `fail`."""

    FAIL = "fail"  # the parent goes to the DLQ
    REMOVE = "remove"  # the parent stops waiting for this child
    IGNORE = "ignore"  # as remove, and the failure is kept (GetIgnoredChildrenFailures)
    CONTINUE = "continue"  # the parent runs now, waiting for no child; the failure is kept (GetFailedChildrenValues)


class LogLevel(enum.StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


# Bounds (ms) of the latency histograms shards keep and fronts render for Prometheus.
LATENCY_BUCKETS_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)


class StallConfig(msgspec.Struct, frozen=True, rename="camel"):
    """A queue's stall detection, as `GET /queues/:q/stall-config` renders it."""

    stall_interval: int
    max_stalls: int
    grace_period: int
    enabled: bool = True


class DlqConfig(msgspec.Struct, frozen=True, rename="camel"):
    """A queue's dead-letter limits, as `GET /queues/:q/dlq-config` renders it."""

    auto_retry: bool
    auto_retry_interval: int
    max_auto_retries: int
    max_age: int
    max_entries: int
