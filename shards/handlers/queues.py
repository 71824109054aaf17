"""Handlers for per-queue reads: counts and the dead-letter queue; and the shard's ping."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bunq import protocol as p
from shards.job import render_dlq_entry
from shards.queues import QueueState

if TYPE_CHECKING:
    from shards.engine import Engine, Respond


def get_counts(engine: Engine, cmd: p.GetCounts, respond: Respond) -> p.Reply:
    q = engine.queues.get(cmd.queue) or QueueState(cmd.queue)
    return p.Counts(q.counts())


def get_dlq(engine: Engine, cmd: p.GetDlq, respond: Respond) -> p.Reply:
    q = engine.queues.get(cmd.queue)
    if q is None:
        return p.DlqEntries([], 0)
    entries: list[bytes] = []
    for i, job in enumerate(q.dlq.values()):
        if i >= cmd.offset + cmd.count:
            break
        if i >= cmd.offset:
            entries.append(render_dlq_entry(job))
    return p.DlqEntries(entries, len(q.dlq))


def ping(engine: Engine, cmd: p.Ping, respond: Respond) -> p.Reply:
    return p.Pong(engine.shard, engine.slots)
