"""`/prometheus`: text format 0.0.4 through prometheus-client, built from the shards' own figures, so
it is the same whichever front process answers the scrape."""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bunq import __version__
from bunq.protocol import LATENCY_BUCKETS_MS as BUCKETS_MS
from bunq.protocol import AggregatorStats
from bunq.stats import Merged

STATES = ("waiting", "delayed", "active", "completed", "failed", "waiting-children", "paused")


class Snapshot(Collector):
    def __init__(self, merged: Merged, aggregator: AggregatorStats | None = None) -> None:
        self.merged = merged
        self.aggregator = aggregator  # None: it did not answer this scrape in time

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("bunq_queue_jobs", "Jobs in a queue by state", labels=["queue", "state"])
        for queue, counts in sorted(self.merged.queues.items()):
            by_state = msgspec.to_builtins(counts)
            for state in STATES:
                jobs.add_metric([queue, state], by_state[state])
        yield jobs
        for name, key, text in (
            ("bunq_jobs_pushed", "pushed", "Jobs pushed"),
            ("bunq_jobs_pulled", "pulled", "Jobs handed to workers"),
            ("bunq_jobs_completed", "completed", "Jobs acknowledged"),
            ("bunq_jobs_failed", "failed", "Job failures reported or detected"),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], self.merged.totals.get(key, 0))
            yield counter
        yield from self.histograms()
        yield from self.shards()
        yield from self.aggregator_figures()

    def histograms(self) -> Iterator[Metric]:
        for key, name, text in (
            ("wait", "bunq_job_wait_seconds", "Time from a job becoming available to a worker starting it"),
            ("processing", "bunq_job_processing_seconds", "Time from a worker starting a job to its ack"),
        ):
            raw = self.merged.histograms.get(key)
            if not raw:
                continue
            buckets, running = [], 0
            for bound, count in zip((*BUCKETS_MS, None), raw[: len(BUCKETS_MS) + 1], strict=True):
                running += count
                buckets.append(("+Inf" if bound is None else str(bound / 1000), running))
            yield HistogramMetricFamily(name, text, buckets=buckets, sum_value=raw[-1] / 1000)

    def shards(self) -> Iterator[Metric]:
        live = GaugeMetricFamily("bunq_shard_jobs", "Live jobs held by a shard", labels=["shard"])
        rss = GaugeMetricFamily("bunq_shard_memory_bytes", "Resident memory of a shard", labels=["shard"])
        size = GaugeMetricFamily("bunq_shard_storage_bytes", "SQLite files of a shard", labels=["shard"])
        dropped = CounterMetricFamily(
            "bunq_shard_events_dropped",
            "Events a shard's socket refused (a subscriber not keeping up)",
            labels=["shard"],
        )
        for stats in self.merged.per_shard:
            shard = str(stats.shard)
            live.add_metric([shard], stats.collections.get("jobIndex", 0))
            rss.add_metric([shard], stats.rss_bytes)
            size.add_metric([shard], stats.storage_bytes)
            dropped.add_metric([shard], stats.events_dropped)
        up = GaugeMetricFamily("bunq_shards_up", "Shards that answered this scrape")
        up.add_metric([], self.merged.shards_up)
        yield from (live, rss, size, dropped, up)

    def aggregator_figures(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bunq_aggregator_up", "Whether the aggregator answered this scrape")
        up.add_metric([], 0 if self.aggregator is None else 1)
        yield up
        if self.aggregator is not None:
            dropped = CounterMetricFamily(
                "bunq_aggregator_events_dropped",
                "Events the aggregator's socket refused on their way to the fronts (a subscriber not keeping up)",
            )
            dropped.add_metric([], self.aggregator.events_dropped)
            yield dropped


# The reference's names (`bunqueue_*`), which a bunqueue user's dashboards scrape: name, type, help, value.
# They are written by hand: prometheus-client would name a counter `bunqueue_jobs_completed` (its samples
# `..._total`), the same family name as the reference's gauge of completed jobs.
COMPAT_TOTALS = (
    ("bunqueue_jobs_waiting", "waiting", "Number of jobs waiting in queue"),
    ("bunqueue_jobs_prioritized", "prioritized", "Number of prioritized jobs (priority > 0)"),
    ("bunqueue_jobs_delayed", "delayed", "Number of delayed jobs"),
    ("bunqueue_jobs_active", "active", "Number of jobs being processed"),
    ("bunqueue_jobs_dlq", "failed", "Number of jobs in dead letter queue"),
    ("bunqueue_jobs_completed", "completed", "Number of completed jobs"),
)
COMPAT_COUNTERS = (
    ("bunqueue_jobs_pushed_total", "pushed", "Total jobs pushed"),
    ("bunqueue_jobs_pulled_total", "pulled", "Total jobs pulled"),
    ("bunqueue_jobs_completed_total", "completed", "Total jobs completed"),
    ("bunqueue_jobs_failed_total", "failed", "Total jobs failed"),
)
COMPAT_PER_QUEUE = (
    ("bunqueue_queue_jobs_waiting", "waiting", "Number of waiting jobs per queue"),
    ("bunqueue_queue_jobs_prioritized", "prioritized", "Number of prioritized jobs per queue"),
    ("bunqueue_queue_jobs_delayed", "delayed", "Number of delayed jobs per queue"),
    ("bunqueue_queue_jobs_active", "active", "Number of active jobs per queue"),
    ("bunqueue_queue_jobs_dlq", "failed", "Number of jobs in dead letter queue per queue"),
)


def _family(name: str, kind: str, text: str, samples: Sequence[tuple[str, float]]) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *(f"{name}{labels} {value}" for labels, value in samples)]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# The registries' figures, under the reference's names: name, type, help, `AggregatorStats` field.
COMPAT_REGISTRIES = (
    ("bunqueue_cron_jobs_registered", "gauge", "Number of registered cron jobs", "crons"),
    ("bunqueue_workers_registered", "gauge", "Number of registered workers", "workers"),
    ("bunqueue_workers_active", "gauge", "Number of active workers", "workers"),
    ("bunqueue_worker_active_jobs", "gauge", "Number of jobs currently processed by workers", "worker_active_jobs"),
    ("bunqueue_worker_concurrency_slots", "gauge", "Configured worker concurrency capacity", "worker_slots"),
    ("bunqueue_workers_processed_total", "counter", "Total jobs processed by workers", "workers_processed"),
    ("bunqueue_workers_failed_total", "counter", "Total jobs failed by workers", "workers_failed"),
    ("bunqueue_webhooks_registered", "gauge", "Number of registered webhooks", "webhooks"),
    ("bunqueue_webhooks_enabled", "gauge", "Number of enabled webhooks", "webhooks_enabled"),
)


def registries(aggregator: AggregatorStats) -> list[str]:
    """Crons, workers, webhooks and connections: the aggregator's figures, absent while it does not answer
    (a zero would read as "none registered")."""
    lines: list[str] = []
    for name, kind, text, field in COMPAT_REGISTRIES:
        lines += _family(name, kind, text, [("", getattr(aggregator, field))])
    if aggregator.connections is not None:
        c = aggregator.connections
        samples = [
            ('{transport="tcp"}', c.tcp),
            ('{transport="websocket"}', c.ws),
            ('{transport="sse"}', c.sse),
            ('{transport="http"}', c.http),
        ]
        lines += _family("bunqueue_connections", "gauge", "Current server connections by bounded transport", samples)
    return lines


def compatible(merged: Merged, uptime_s: int, front_rss: int, aggregator: AggregatorStats | None = None) -> bytes:
    """The reference's metric names, from the same figures as bunq's own."""
    lines = _family(
        "bunqueue_build_info",
        "gauge",
        "Build and runtime identity",
        [(f'{{python_version="{platform.python_version()}",version="{__version__}"}}', 1)],
    )
    for name, key, text in COMPAT_TOTALS:
        lines += _family(name, "gauge", text, [("", sum(getattr(q, key) for q in merged.queues.values()))])
    for name, key, text in COMPAT_COUNTERS:
        lines += _family(name, "counter", text, [("", merged.totals.get(key, 0))])
    queues = sorted(merged.queues.items())
    for name, key, text in COMPAT_PER_QUEUE:
        samples = [(f'{{queue="{_label(q)}"}}', getattr(c, key)) for q, c in queues]
        lines += _family(name, "gauge", text, samples)
    lines += _family("bunqueue_uptime_seconds", "gauge", "Server uptime in seconds", [("", uptime_s)])
    rss = merged.rss_bytes + front_rss
    lines += _family(
        "bunqueue_process_resident_memory_bytes", "gauge", "Process resident memory size in bytes", [("", rss)]
    )
    lines += _family(
        "bunqueue_sqlite_database_size_bytes",
        "gauge",
        "SQLite database file size in bytes",
        [("", merged.storage_bytes)],
    )
    full = 1 if merged.disk_full else 0
    lines += _family(
        "bunqueue_storage_disk_full", "gauge", "Whether persistent storage reported a full disk", [("", full)]
    )
    if aggregator is not None:
        lines += registries(aggregator)
    return ("\n".join(lines) + "\n").encode()


def render(merged: Merged, uptime_s: int = 0, front_rss: int = 0, aggregator: AggregatorStats | None = None) -> bytes:
    """bunq's own metrics, then the reference's names."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(merged, aggregator))
    return bytes(generate_latest(registry)) + compatible(merged, uptime_s, front_rss, aggregator)
