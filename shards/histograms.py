"""Latency histograms kept by a shard (push→start wait, processing time), merged for Prometheus."""

from __future__ import annotations

import bisect

from bunq.protocol import LATENCY_BUCKETS_MS as BUCKETS_MS


class Histogram:
    __slots__ = ("counts", "total", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_MS) + 1)
        self.total = 0
        self.sum_ms = 0

    def observe(self, ms: int) -> None:
        self.counts[bisect.bisect_left(BUCKETS_MS, ms)] += 1
        self.total += 1
        self.sum_ms += ms

    def export(self) -> list[int]:
        """Bucket counts (not cumulative; the last is +Inf), then the count and the sum in ms."""
        return [*self.counts, self.total, self.sum_ms]
