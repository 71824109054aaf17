"""Periodic system events, merged over every shard: `stats:snapshot` (5 s), `health:status` (10 s),
`storage:status` (30 s), and the threshold events (`queue:idle`, `queue:threshold`, `worker:overloaded`,
`worker:error`, `server:memory-warning`, `storage:size-warning`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from bunq import __version__
from bunq.aggregator.crons import CronTable
from bunq.aggregator.fronts import FrontConnections
from bunq.aggregator.workers import Workers
from bunq.client import Shards
from bunq.procinfo import rss_bytes
from bunq.settings import Thresholds
from bunq.stats import Merged, disk_full, gather

log = logging.getLogger("bunq.aggregator")

SNAPSHOT_S = 5.0
HEALTH_EVERY = 2  # snapshots
STORAGE_EVERY = 6
WORKER_ERROR_MARKS = (5, 10, 25, 50, 100)
MB = 1024 * 1024
RATES = {"pushed": "pushPerSec", "pulled": "pullPerSec", "completed": "completePerSec", "failed": "failPerSec"}

Publish = Callable[[str, dict[str, Any]], None]


class Monitor:
    def __init__(
        self,
        client: Shards,
        workers: Workers,
        crons: CronTable,
        publish: Publish,
        thresholds: Thresholds,
        fronts: FrontConnections,
    ) -> None:
        self.client = client
        self.fronts = fronts
        self.workers = workers
        self.crons = crons
        self.publish = publish
        self.thresholds = thresholds
        self.started = time.time()
        self.previous: tuple[float, dict[str, int]] | None = None
        self.rates: dict[str, float] = dict.fromkeys(RATES.values(), 0.0)  # per second, over the last snapshot
        self.idle_since: dict[str, float] = {}
        self.idle_reported: set[str] = set()
        self.over_size: set[str] = set()
        self.overloaded_since: dict[str, float] = {}
        self.error_marks: dict[str, int] = {}
        self.warned: set[str] = set()

    def uptime(self) -> int:
        return int(time.time() - self.started)

    async def run(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(SNAPSHOT_S)
            tick += 1
            try:
                await self.periodic(tick)
            except Exception:
                log.exception("periodic events failed; trying again at the next tick")

    async def periodic(self, tick: int) -> None:
        """One tick's events; a failure is logged and the next tick runs, so they never stop for good."""
        merged = await gather(self.client)
        self.snapshot(merged)
        if tick % HEALTH_EVERY == 0:
            self.health(merged)
        if tick % STORAGE_EVERY == 0:
            self.publish("storage:status", {"collections": merged.collections, "diskFull": disk_full(merged)})
        self.check_queues(merged)
        self.check_workers()
        self.check_resources(merged)

    def snapshot(self, merged: Merged) -> None:
        now = time.monotonic()
        if self.previous is not None:
            elapsed = max(0.001, now - self.previous[0])
            for total, key in RATES.items():
                delta = merged.totals.get(total, 0) - self.previous[1].get(total, 0)
                self.rates[key] = round(max(0, delta) / elapsed, 2)
        self.previous = (now, dict(merged.totals))
        rates = {key: self.rates[key] for key in ("pushPerSec", "pullPerSec")}
        counts = merged.counts()
        self.publish(
            "stats:snapshot",
            {
                **counts,
                "dlq": counts["failed"],
                "totalPushed": merged.totals.get("pushed", 0),
                "totalPulled": merged.totals.get("pulled", 0),
                "totalCompleted": merged.totals.get("completed", 0),
                "totalFailed": merged.totals.get("failed", 0),
                **rates,
                "uptime": int((time.time() - self.started) * 1000),  # ms, as the reference has it here
                "queues": {
                    name: {**msgspec.to_builtins(c), "dlq": c.failed, "paused": name in merged.paused}
                    for name, c in sorted(merged.queues.items())
                },
                "workers": {"total": len(self.workers.workers), "active": len(self.workers.workers)},
                "cronJobs": len(self.crons.crons),
            },
        )

    def health(self, merged: Merged) -> None:
        rss = merged.rss_bytes + rss_bytes()
        fronts = self.fronts.totals()
        self.publish(
            "health:status",
            {
                "ok": merged.shards_up == self.client.shards,
                "uptime": self.uptime(),
                "memory": {"rss": rss // MB, "heapUsed": rss // MB},
                "connections": {"tcp": fronts.tcp, "ws": fronts.ws, "sse": fronts.sse, "shards": merged.shards_up},
            },
        )

    def check_queues(self, merged: Merged) -> None:
        now = time.monotonic()
        for name, counts in merged.queues.items():
            busy = counts.waiting + counts.active + counts.delayed
            if busy:
                self.idle_since.pop(name, None)
                self.idle_reported.discard(name)
            else:
                since = self.idle_since.setdefault(name, now)
                idle_ms = (now - since) * 1000
                if idle_ms >= self.thresholds.queue_idle_ms and name not in self.idle_reported:
                    self.idle_reported.add(name)
                    self.publish("queue:idle", {"queue": name, "idleSeconds": int(idle_ms / 1000)})
            limit = self.thresholds.queue_size
            size = counts.waiting
            if limit and size > limit and name not in self.over_size:
                self.over_size.add(name)
                self.publish("queue:threshold", {"queue": name, "size": size, "threshold": limit})
            elif limit and size <= limit:
                self.over_size.discard(name)

    def check_workers(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.workers.values()):
            if worker.active_jobs >= worker.concurrency:
                since = self.overloaded_since.setdefault(worker.id, now)
                seconds = now - since
                if seconds * 1000 >= self.thresholds.worker_overload_ms:
                    self.overloaded_since[worker.id] = now
                    self.publish("worker:overloaded", {
                        "workerId": worker.id, "name": worker.name, "activeJobs": worker.active_jobs,
                        "concurrency": worker.concurrency, "overloadedSeconds": int(seconds)})  # fmt: skip
            else:
                self.overloaded_since.pop(worker.id, None)
            self.check_errors(worker.id)

    def check_errors(self, worker_id: str) -> None:
        worker = self.workers.workers[worker_id]
        reached = [m for m in WORKER_ERROR_MARKS if worker.failed_jobs >= m]
        if reached and reached[-1] > self.error_marks.get(worker_id, 0):
            self.error_marks[worker_id] = reached[-1]
            rate = round(worker.failed_jobs / max(1, worker.failed_jobs + worker.processed_jobs), 4)
            self.publish("worker:error", {
                "workerId": worker.id, "name": worker.name, "failedJobs": worker.failed_jobs,
                "processedJobs": worker.processed_jobs, "failureRate": rate})  # fmt: skip

    def check_resources(self, merged: Merged) -> None:
        rss_mb = (merged.rss_bytes + rss_bytes()) // MB
        limit = self.thresholds.memory_mb
        if limit and rss_mb > limit and "memory" not in self.warned:
            self.warned.add("memory")
            self.publish("server:memory-warning", {"heapUsedMB": rss_mb, "thresholdMB": limit, "rssMB": rss_mb})
        elif limit and rss_mb <= limit:
            self.warned.discard("memory")
        size_mb = merged.storage_bytes // MB
        limit = self.thresholds.storage_mb
        if limit and size_mb > limit and "storage" not in self.warned:
            self.warned.add("storage")
            self.publish("storage:size-warning", {"sizeMB": size_mb, "thresholdMB": limit})
        elif limit and size_mb <= limit:
            self.warned.discard("storage")

    def started_event(self) -> None:
        self.publish("server:started", {"version": __version__, "startedAt": int(self.started * 1000)})
