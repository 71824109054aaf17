"""Every shard's statistics merged into one view: read by the front (monitoring routes, Prometheus text) and by
the aggregator (periodic events), so that neither imports the other."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bunq import protocol as p
from bunq.client import Shards
from bunq.errors import BunqError


@dataclass
class Merged:
    """One merged view of every shard."""

    totals: dict[str, int] = field(default_factory=dict)
    queues: dict[str, p.QueueCounts] = field(default_factory=dict)
    collections: dict[str, int] = field(default_factory=dict)
    rss_bytes: int = 0
    storage_bytes: int = 0
    free_disk_bytes: int = 0
    shards_up: int = 0
    disk_full: bool = False
    histograms: dict[str, list[int]] = field(default_factory=dict)
    per_shard: list[p.ShardStats] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        keys = ("waiting", "active", "delayed", "completed", "failed")
        return {k: sum(getattr(q, k) for q in self.queues.values()) for k in keys}


async def gather(client: Shards, wait_s: float | None = None) -> Merged:
    """Every answering shard's figures merged; a shard that is down or silent is left out (and not
    counted in `shards_up`) rather than failing the whole call. With `wait_s`, a shard silent that long
    counts as silent (the probes and scrapes, whose callers give up long before a request timeout)."""
    merged = Merged(free_disk_bytes=-1)
    calls = (client.call_raw(shard, p.GetStats()) for shard in range(client.shards))
    if wait_s is not None:
        calls = (asyncio.wait_for(call, wait_s) for call in calls)
    for reply in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(reply, BaseException) and not isinstance(reply, BunqError | TimeoutError):
            raise reply
        if not isinstance(reply, p.ShardStats):
            continue
        merged.shards_up += 1
        merged.per_shard.append(reply)
        merged.disk_full = merged.disk_full or reply.disk_full
        for key, values in reply.histograms.items():
            current = merged.histograms.setdefault(key, [0] * len(values))
            merged.histograms[key] = [a + b for a, b in zip(current, values, strict=False)]
        for key, value in reply.totals.items():
            merged.totals[key] = merged.totals.get(key, 0) + value
        merged.queues.update(reply.queues)
        merged.paused.update(reply.paused)
        for key, value in reply.collections.items():
            merged.collections[key] = merged.collections.get(key, 0) + value
        merged.rss_bytes += reply.rss_bytes
        merged.storage_bytes += reply.storage_bytes
        free = reply.free_disk_bytes
        merged.free_disk_bytes = free if merged.free_disk_bytes < 0 else min(merged.free_disk_bytes, free)
    return merged


def disk_full(merged: Merged) -> bool:
    """A shard is full below `BUNQ_MIN_FREE_DISK_MB` free (it checks, and refuses durable pushes, itself)."""
    return merged.disk_full
