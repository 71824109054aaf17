"""The event catalogue of the spec (60 events) and the subscription patterns clients may use."""

from __future__ import annotations

from typing import Literal, get_args

from bunq.errors import BadRequest

# Every event name, one enumeration: what shards and the aggregator emit is typed `EventName`, so a
# misspelt name is a type error; `EVENTS` is the same list at run time, in the spec's order.
EventName = Literal[
    # job lifecycle
    "job:pushed", "job:active", "job:completed", "job:failed", "job:removed", "job:promoted", "job:progress",
    "job:delayed", "job:stalled", "job:retried", "job:discarded", "job:priority-changed", "job:data-updated",
    "job:delay-changed", "job:expired",
    # queue
    "queue:counts", "queue:paused", "queue:resumed", "queue:drained", "queue:cleaned", "queue:obliterated",
    "queue:created", "queue:removed", "queue:idle", "queue:threshold",
    # flow
    "flow:completed", "flow:failed",
    # dead-letter queue
    "dlq:added", "dlq:retried", "dlq:retry-all", "dlq:purged",
    # cron
    "cron:created", "cron:deleted", "cron:fired", "cron:updated", "cron:missed", "cron:skipped",
    # worker
    "worker:connected", "worker:disconnected", "worker:heartbeat", "worker:overloaded", "worker:error",
    # rate limiting and concurrency
    "ratelimit:set", "ratelimit:cleared", "ratelimit:hit", "concurrency:set", "concurrency:cleared",
    # webhook
    "webhook:added", "webhook:removed", "webhook:fired", "webhook:failed",
    # system
    "stats:snapshot", "health:status", "storage:status", "server:started", "server:shutdown",
    "server:memory-warning", "storage:size-warning",
    # config
    "config:stall-changed", "config:dlq-changed",
]  # fmt: skip
EVENTS: tuple[EventName, ...] = get_args(EventName)

CATEGORIES = sorted({name.split(":", 1)[0] for name in EVENTS})

# Not an event: the topic prefix of the subscription barrier (bunq/events.py). A front subscribes to
# `sync:<random>` after its real subscriptions; the aggregator and every shard answer on that topic the
# moment it reaches them, naming themselves (`{"shard": i}`, the aggregator `SYNC_AGGREGATOR`). Never
# delivered to clients, never counted as wanted.
SYNC = "sync:"
SYNC_AGGREGATOR = -1

# Not an event either: what each shard tells the aggregator's worker registry, once per turn of its loop,
# of the jobs it leased to owners, completed and failed for them (`{"workers": {owner: [started,
# completed, failed, current job or null]}}`), instead of three job events per job. Never delivered to
# clients.
WORKER_TALLY = "tally:workers"
INTERNAL = (SYNC, WORKER_TALLY)


def topic_of(pattern: str) -> str:
    """The ZeroMQ topic prefix for a subscription pattern; refuses names outside the catalogue."""
    if pattern == "*":
        return ""
    if pattern.endswith(":*") and pattern[:-2] in CATEGORIES:
        return pattern[:-1]
    if pattern in EVENTS:
        return pattern
    raise BadRequest(f"Unknown event: {pattern}")


def known(pattern: str) -> bool:
    """Whether a subscription pattern names an event of the catalogue or a wildcard over them."""
    return pattern == "*" or pattern in EVENTS or (pattern.endswith(":*") and pattern[:-2] in CATEGORIES)


def matches(pattern: str, name: str) -> bool:
    return name.startswith(topic_of(pattern))
