"""`/prometheus`'s text, rendered from merged shard figures and the aggregator's own (when it answered)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bunq import metrics
from bunq import protocol as p
from bunq.stats import Merged


def _families(text: bytes) -> dict[str, list[float]]:
    return {f.name: [s.value for s in f.samples] for f in text_string_to_metric_families(text.decode())}


def test_the_aggregator_s_dropped_events_are_a_counter_while_it_answers() -> None:
    families = _families(metrics.render(Merged(), aggregator=p.AggregatorStats(events_dropped=7)))
    assert families["bunq_aggregator_up"] == [1]
    assert families["bunq_aggregator_events_dropped"] == [7]


def test_a_silent_aggregator_reads_as_down_and_its_counter_is_left_out() -> None:
    """A counter that jumped to 0 for one scrape would read as a reset; absent, it is a gap."""
    families = _families(metrics.render(Merged(), aggregator=None))
    assert families["bunq_aggregator_up"] == [0]
    assert "bunq_aggregator_events_dropped" not in families


def test_the_registries_are_scraped_under_the_reference_s_names() -> None:
    stats = p.AggregatorStats(
        0,
        crons=2,
        webhooks=3,
        webhooks_enabled=1,
        workers=4,
        worker_active_jobs=5,
        worker_slots=16,
        workers_processed=70,
        workers_failed=8,
        connections=p.ConnectionCounts(tcp=9, ws=2, sse=1, http=6),
    )
    text = metrics.render(Merged(), aggregator=stats).decode()
    families = _families(text.encode())
    assert families["bunqueue_cron_jobs_registered"] == [2]
    assert families["bunqueue_webhooks_registered"] == [3]
    assert families["bunqueue_webhooks_enabled"] == [1]
    assert families["bunqueue_workers_registered"] == [4]
    assert families["bunqueue_worker_active_jobs"] == [5]
    assert families["bunqueue_worker_concurrency_slots"] == [16]
    assert "bunqueue_workers_processed_total 70" in text
    assert "bunqueue_workers_failed_total 8" in text
    assert 'bunqueue_connections{transport="tcp"} 9' in text
    assert 'bunqueue_connections{transport="websocket"} 2' in text
    assert 'bunqueue_connections{transport="http"} 6' in text
    assert families["bunqueue_build_info"] == [1]


def test_without_the_aggregator_the_registries_are_left_out_rather_than_zero() -> None:
    families = _families(metrics.render(Merged(), aggregator=None))
    assert "bunqueue_workers_registered" not in families
    assert "bunqueue_cron_jobs_registered" not in families
