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
