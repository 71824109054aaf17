"""Handlers for queue commands: listing, counts, pause, drain, clean, obliterate, DLQ, limits, configs."""

from __future__ import annotations

import collections
import dataclasses
import gc
import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from bunq import protocol as p
from bunq.procinfo import rss_bytes
from shards import admin
from shards.job import render, render_dlq_entry
from shards.queues import RATE_WINDOW_MS, QueueState

if TYPE_CHECKING:
    from shards.dlq import DeadLetters
    from shards.emitter import EventSink
    from shards.histograms import Histogram
    from shards.job import Job
    from shards.pulls import Pulls
    from shards.store import Store
    from shards.timers import Timers
    from shards.waiters import Respond


class QueueCommands(admin.QueueWide, Protocol):
    """What the queue handlers use of the engine, beyond the whole-queue operations."""

    @property
    def shard(self) -> int: ...

    @property
    def slots(self) -> int: ...

    @property
    def queues(self) -> Mapping[str, QueueState]: ...

    @property
    def jobs(self) -> Mapping[str, Job]: ...

    @property
    def dlq(self) -> DeadLetters: ...

    @property
    def pulls(self) -> Pulls: ...

    @property
    def timers(self) -> Timers: ...

    @property
    def store(self) -> Store: ...

    @property
    def totals(self) -> dict[str, int]: ...

    @property
    def events(self) -> EventSink: ...

    @property
    def wait_histogram(self) -> Histogram: ...

    @property
    def processing_histogram(self) -> Histogram: ...

    @property
    def disk_full(self) -> bool: ...

    def queue(self, name: str) -> QueueState: ...


def _queue(engine: QueueCommands, name: str) -> QueueState:
    """The queue, or an empty one left unregistered: queues are implicit, so a queue with no jobs yet
    reads as its defaults and a bulk operation on it finds nothing (and creates nothing)."""
    return engine.queues.get(name) or QueueState(name)


def _settings_changed(engine: QueueCommands, q: QueueState) -> p.QueueConfig:
    engine.registry.save(q)
    return get_queue_config(engine, p.GetQueueConfig(q.name), lambda r: None)


def list_queues(engine: QueueCommands, cmd: p.ListQueues, respond: Respond) -> p.Reply:
    return p.QueueNames(engine.registry.known_names())


def get_counts(engine: QueueCommands, cmd: p.GetCounts, respond: Respond) -> p.Reply:
    return p.Counts(_queue(engine, cmd.queue).counts())


def get_priority_counts(engine: QueueCommands, cmd: p.GetPriorityCounts, respond: Respond) -> p.Reply:
    """Waiting and delayed jobs per priority, lowest first (as the reference counts them, and as the spec's
    example lists them)."""
    q = _queue(engine, cmd.queue)
    by_priority = q.priorities + q.delayed_priorities
    return p.PriorityCounts({str(priority): n for priority, n in sorted(by_priority.items())})


def list_jobs(engine: QueueCommands, cmd: p.ListJobs, respond: Respond) -> p.Reply:
    q = _queue(engine, cmd.queue)
    return p.Jobs([render(job) for job in admin.list_jobs(engine, q, cmd.state, cmd.limit, cmd.offset, cmd.asc)])


def get_queue_config(engine: QueueCommands, cmd: p.GetQueueConfig, respond: Respond) -> p.QueueConfig:
    q = _queue(engine, cmd.queue)
    s = q.settings
    stall, dlq = s.stall, s.dlq
    return p.QueueConfig(
        paused=s.paused,
        rate_limit=s.rate_limit,
        concurrency=s.concurrency,
        stall=p.StallConfig(stall.stall_interval, stall.max_stalls, stall.grace_period, stall.enabled),
        dlq=p.DlqConfig(dlq.auto_retry, dlq.auto_retry_interval, dlq.max_auto_retries, dlq.max_age, dlq.max_entries),
    )


def pause_queue(engine: QueueCommands, cmd: p.PauseQueue, respond: Respond) -> p.Reply:
    q = engine.queue(cmd.queue)
    q.settings.paused = True
    _settings_changed(engine, q)
    engine.emit_data("queue:paused", {"queue": q.name})
    return p.Done()


def resume_queue(engine: QueueCommands, cmd: p.ResumeQueue, respond: Respond) -> p.Reply:
    q = engine.queue(cmd.queue)
    q.settings.paused = False
    _settings_changed(engine, q)
    engine.emit_data("queue:resumed", {"queue": q.name})
    engine.pulls.serve_soon(q)
    return p.Done()


def drain_queue(engine: QueueCommands, cmd: p.DrainQueue, respond: Respond) -> p.Reply:
    return p.Count(admin.drain(engine, _queue(engine, cmd.queue)))


def obliterate_queue(engine: QueueCommands, cmd: p.ObliterateQueue, respond: Respond) -> p.Reply:
    q = engine.queues.get(cmd.queue)
    if q is not None:
        admin.obliterate(engine, q)
    return p.Done()


def clean_queue(engine: QueueCommands, cmd: p.CleanQueue, respond: Respond) -> p.Reply:
    ids = admin.clean(engine, _queue(engine, cmd.queue), cmd.grace, cmd.state, cmd.limit)
    return p.Count(len(ids), ids)


def promote_jobs(engine: QueueCommands, cmd: p.PromoteJobs, respond: Respond) -> p.Reply:
    return p.Count(admin.promote_all(engine, _queue(engine, cmd.queue), cmd.count))


def retry_completed(engine: QueueCommands, cmd: p.RetryCompleted, respond: Respond) -> p.Reply:
    return p.Count(admin.retry_completed(engine, _queue(engine, cmd.queue), cmd.id))


def get_dlq(engine: QueueCommands, cmd: p.GetDlq, respond: Respond) -> p.Reply:
    q = _queue(engine, cmd.queue)
    max_age = q.settings.dlq.max_age
    entries: list[bytes] = []
    for i, job in enumerate(q.dlq.values()):
        if i >= cmd.offset + cmd.count:
            break
        if i >= cmd.offset:
            next_retry = engine.dlq.next_retry_at(q, job)
            entries.append(render_dlq_entry(job, next_retry, (job.dlq_entered_at or 0) + max_age))
    return p.DlqEntries(entries, len(q.dlq))


def get_dlq_stats(engine: QueueCommands, cmd: p.GetDlqStats, respond: Respond) -> p.Reply:
    return engine.dlq.stats(_queue(engine, cmd.queue))


def remove_dlq_job(engine: QueueCommands, cmd: p.RemoveDlqJob, respond: Respond) -> p.Reply:
    return p.Count(int(engine.dlq.remove(_queue(engine, cmd.queue), cmd.id)))


def retry_dlq(engine: QueueCommands, cmd: p.RetryDlq, respond: Respond) -> p.Reply:
    return p.Count(engine.dlq.retry(_queue(engine, cmd.queue), cmd.id, cmd.count))


def purge_dlq(engine: QueueCommands, cmd: p.PurgeDlq, respond: Respond) -> p.Reply:
    return p.Count(engine.dlq.purge(_queue(engine, cmd.queue)))


def get_queue_limits(engine: QueueCommands, cmd: p.GetQueueLimits, respond: Respond) -> p.Reply:
    q = _queue(engine, cmd.queue)
    s = q.settings
    ttl = q.rate_limit_ttl(engine.clock(), cmd.max_jobs)
    return p.QueueLimits(s.rate_limit, ttl, s.concurrency, q.maxed(), RATE_WINDOW_MS)


def _nothing_to_clear(engine: QueueCommands, name: str, limit: int | None) -> bool:
    """A limit cleared on a queue nobody pushed to nor configured: its defaults stand, and it stays unlisted
    (as the reference: clearing used to register the queue, which `GET /queues` then listed)."""
    q = engine.queues.get(name)
    return limit is None and (q is None or not q.known)


def set_rate_limit(engine: QueueCommands, cmd: p.SetRateLimit, respond: Respond) -> p.Reply:
    if _nothing_to_clear(engine, cmd.queue, cmd.limit):
        engine.emit_data("ratelimit:cleared", {"queue": cmd.queue})
        return get_queue_config(engine, p.GetQueueConfig(cmd.queue), respond)
    q = engine.queue(cmd.queue)
    q.settings.rate_limit = cmd.limit
    q.pulls.clear()
    if cmd.limit is None:
        engine.emit_data("ratelimit:cleared", {"queue": q.name})
    else:
        engine.emit_data("ratelimit:set", {"queue": q.name, "max": cmd.limit})
    engine.pulls.serve_soon(q)  # a new window: parked pulls may take jobs now
    return _settings_changed(engine, q)


def set_concurrency(engine: QueueCommands, cmd: p.SetConcurrency, respond: Respond) -> p.Reply:
    if _nothing_to_clear(engine, cmd.queue, cmd.limit):
        engine.emit_data("concurrency:cleared", {"queue": cmd.queue})
        return get_queue_config(engine, p.GetQueueConfig(cmd.queue), respond)
    q = engine.queue(cmd.queue)
    q.settings.concurrency = cmd.limit
    if cmd.limit is None:
        engine.emit_data("concurrency:cleared", {"queue": q.name})
    else:
        engine.emit_data("concurrency:set", {"queue": q.name, "concurrency": cmd.limit})
    engine.pulls.serve_soon(q)
    return _settings_changed(engine, q)


def set_stall_config(engine: QueueCommands, cmd: p.SetStallConfig, respond: Respond) -> p.Reply:
    q = engine.queue(cmd.queue)
    changes: dict[str, Any] = {
        "stall_interval": cmd.stall_interval,
        "max_stalls": cmd.max_stalls,
        "grace_period": cmd.grace_period,
        "enabled": cmd.enabled,
    }
    q.settings.stall = dataclasses.replace(q.settings.stall, **{k: v for k, v in changes.items() if v is not None})
    config = _settings_changed(engine, q)
    engine.emit_data("config:stall-changed", {"queue": q.name, "config": msgspec.to_builtins(config.stall)})
    return config


def set_dlq_config(engine: QueueCommands, cmd: p.SetDlqConfig, respond: Respond) -> p.Reply:
    q = engine.queue(cmd.queue)
    changes: dict[str, Any] = {
        "auto_retry": cmd.auto_retry,
        "max_age": cmd.max_age,
        "max_entries": cmd.max_entries,
        "auto_retry_interval": cmd.auto_retry_interval,
        "max_auto_retries": cmd.max_auto_retries,
    }
    q.settings.dlq = dataclasses.replace(q.settings.dlq, **{k: v for k, v in changes.items() if v is not None})
    config = _settings_changed(engine, q)
    engine.emit_data("config:dlq-changed", {"queue": q.name, "config": msgspec.to_builtins(config.dlq)})
    engine.dlq.config_changed(q)
    return config


# ---- unique keys ------------------------------------------------------------------------------------


def get_deduplication_job_id(engine: QueueCommands, cmd: p.GetDeduplicationJobId, respond: Respond) -> p.Reply:
    holder = engine.index.holder(cmd.queue, cmd.key)
    return p.Ids([] if holder is None else [holder])


def remove_deduplication_key(engine: QueueCommands, cmd: p.RemoveDeduplicationKey, respond: Respond) -> p.Reply:
    holder = engine.index.holder(cmd.queue, cmd.key)
    job = None if holder is None else engine.jobs.get(holder)
    return p.Count(int(job is not None and engine.index.free_unique(job)))


def remove_job_deduplication_key(engine: QueueCommands, cmd: p.RemoveJobDeduplicationKey, respond: Respond) -> p.Reply:
    job = engine.jobs.get(cmd.id)
    return p.Count(int(job is not None and engine.index.free_unique(job)))


def get_stats(engine: QueueCommands, cmd: p.GetStats, respond: Respond) -> p.Reply:
    queues = {name: q.counts() for name, q in engine.queues.items() if q.known}
    collections = {
        "jobIndex": len(engine.jobs),
        "completedJobs": len(engine.index.finished),
        "processingTotal": sum(len(q.active) for q in engine.queues.values()),
        "queuedTotal": sum(q.waiting_count for q in engine.queues.values()),
        "temporalIndexTotal": len(engine.timers),
        "logs": len(engine.logs.by_job),
        "results": len(engine.index.results),
    }
    path = engine.store.path
    storage = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    rss = rss_bytes()
    histograms = {"wait": engine.wait_histogram.export(), "processing": engine.processing_histogram.export()}
    return p.ShardStats(
        engine.shard,
        dict(engine.totals),
        queues,
        collections,
        rss,
        storage,
        free,
        engine.disk_full,
        histograms,
        engine.events.dropped,
        [name for name in queues if engine.queues[name].settings.paused],
    )


def collect(engine: QueueCommands, cmd: p.Collect, respond: Respond) -> p.Reply:
    """Collect garbage and give back what over-grown structures hold (dicts never shrink on their own)."""
    before = rss_bytes()
    engine.flush()
    engine.index.compact()
    for q in engine.queues.values():
        q.active = dict(q.active)
        q.dlq = dict(q.dlq)
    gc.collect()
    return p.Memory(before, rss_bytes())


def get_heap_stats(engine: QueueCommands, cmd: p.GetHeapStats, respond: Respond) -> p.Reply:
    stats = get_stats(engine, p.GetStats(), respond)
    assert isinstance(stats, p.ShardStats)
    return p.HeapStats(f"shard-{engine.shard}", stats.rss_bytes, top_types(), stats.collections)


def top_types(limit: int = 20) -> list[tuple[str, int]]:
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return counts.most_common(limit)


def ping(engine: QueueCommands, cmd: p.Ping, respond: Respond) -> p.Reply:
    return p.Pong(engine.shard, engine.slots)
