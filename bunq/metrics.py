"""`/prometheus`: text format 0.0.4 through prometheus-client, built from the shards' own figures, so
it is the same whichever front process answers the scrape."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bunq.protocol import LATENCY_BUCKETS_MS as BUCKETS_MS
from bunq.stats import Merged

STATES = ("waiting", "delayed", "active", "completed", "failed", "waiting-children", "paused")


class Snapshot(Collector):
    def __init__(self, merged: Merged) -> None:
        self.merged = merged

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


def render(merged: Merged) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(merged))
    return bytes(generate_latest(registry))
