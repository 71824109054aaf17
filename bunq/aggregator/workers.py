"""The worker registry: registrations, heartbeats, expiry, and per-worker job counts.

A worker identifies itself by pulling with `owner` set to its id (or its name); the counts come from the
shards' tally of the jobs they leased to each owner (`WORKER_TALLY`, once per turn of a shard's loop: three
job events per job cost the shard and this process more than the rest of the job's life)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from bunq.aggregator.store import Records, RegistryStore
from bunq.catalogue import WORKER_TALLY
from bunq.clock import Clock, wall_ms

KIND = "worker"
TOPICS = {WORKER_TALLY}

Publish = Callable[[str, dict[str, Any]], None]


class Worker(msgspec.Struct):
    id: str
    name: str | None
    queues: list[str]
    concurrency: int = 1
    hostname: str | None = None
    pid: int | None = None
    registered_at: int = 0
    last_seen: int = 0
    active_jobs: int = 0
    processed_jobs: int = 0
    failed_jobs: int = 0
    current_job: str | None = None


class Workers:
    def __init__(self, store: RegistryStore, publish: Publish, timeout_ms: int, clock: Clock = wall_ms) -> None:
        self.publish = publish
        self.timeout_ms = timeout_ms
        self.clock = clock
        self.records = Records(store, KIND, Worker, lambda worker: worker.id, "Worker not found")
        self.workers = self.records.items  # read-only: the records write it
        self.dirty: set[str] = set()
        started = clock()
        for worker in self.workers.values():
            worker.last_seen = max(worker.last_seen, started)  # a restart is not the worker's silence

    def save(self, worker: Worker) -> None:
        self.records.save(worker)
        self.dirty.discard(worker.id)

    def register(
        self,
        name: str | None,
        queues: list[str],
        concurrency: int,
        hostname: str | None,
        pid: int | None,
        worker_id: str | None = None,
    ) -> Worker:
        """A new worker; with the id of one already registered (a client that reconnects), that one again,
        its counts kept."""
        now = self.clock()
        known = self.workers.get(worker_id) if worker_id else None
        registered_at = known.registered_at if known else now
        worker = Worker(worker_id or str(uuid.uuid4()), name, queues, concurrency, hostname, pid, registered_at, now)
        if known:
            worker.active_jobs, worker.processed_jobs, worker.failed_jobs = (
                known.active_jobs,
                known.processed_jobs,
                known.failed_jobs,
            )
        self.save(worker)
        self.publish("worker:connected", {"workerId": worker.id, "name": name, "queues": queues})
        return worker

    def get(self, worker_id: str) -> Worker:
        return self.records.get(worker_id)

    def remove(self, worker_id: str) -> None:
        self.get(worker_id)
        self._drop(worker_id)

    def _drop(self, worker_id: str) -> None:
        self.records.delete(worker_id)
        self.dirty.discard(worker_id)
        self.publish("worker:disconnected", {"workerId": worker_id})

    def heartbeat(
        self, worker_id: str, active: int | None = None, processed: int | None = None, failed: int | None = None
    ) -> Worker:
        """The worker is alive; the counts it reports of itself replace the tallied ones."""
        worker = self.get(worker_id)
        worker.last_seen = self.clock()
        if active is not None:
            worker.active_jobs = active
        if processed is not None:
            worker.processed_jobs = processed
        if failed is not None:
            worker.failed_jobs = failed
        self.dirty.add(worker_id)
        self.publish("worker:heartbeat", {"workerId": worker_id})
        return worker

    def expire(self) -> None:
        """Drop the workers that sent no heartbeat for the timeout; persist changed counts."""
        cutoff = self.clock() - self.timeout_ms
        for worker_id in [w.id for w in self.workers.values() if w.last_seen < cutoff]:
            self._drop(worker_id)
        for worker_id in list(self.dirty):
            self.save(self.workers[worker_id])

    def _owner(self, owner: str) -> Worker | None:
        worker = self.workers.get(owner)
        if worker is not None:
            return worker
        return next((w for w in self.workers.values() if w.name == owner), None)

    def on_event(self, topic: str, envelope: dict[str, Any]) -> None:
        """A shard's tally: per owner, the jobs it started, completed and failed, and the one it started last."""
        data = envelope.get("data")
        tally = data.get("workers") if isinstance(data, dict) else None
        if not isinstance(tally, dict):
            return
        now = self.clock()
        for owner, entry in tally.items():
            worker = self._owner(owner)
            if worker is None or not isinstance(entry, list) or len(entry) != 4:
                continue
            started, completed, failed, current = entry
            worker.active_jobs = max(0, worker.active_jobs + started - completed - failed)
            worker.processed_jobs += completed
            worker.failed_jobs += failed
            if started:
                worker.current_job = current
            elif not worker.active_jobs:
                worker.current_job = None
            worker.last_seen = now
            self.dirty.add(worker.id)
