"""What used to be swallowed silently is counted: events a socket refuses, and `whsec_` secrets that are
not base64 (signed with as written)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import zmq

from bunq import protocol as p
from bunq.aggregator import webhooks
from bunq.aggregator.server import Aggregator
from shards.events import Publisher
from tests.support.clock import FakeClock
from tests.support.engines import call, make_engine


class RefusingSocket:
    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        raise zmq.Again()


def test_the_shard_publisher_counts_refused_events() -> None:
    publisher = Publisher(cast(Any, RefusingSocket()), 0)
    publisher.publish("job:pushed", {"jobId": "a"})
    publisher.publish("job:pushed", {"jobId": "b"})
    publisher.publish("job:active", {"jobId": "a"})  # a new name sends the run before it
    assert publisher.dropped == 2
    publisher.flush()
    assert publisher.dropped == 3


def test_a_shard_reports_what_its_sink_dropped_in_its_stats(tmp_path: Path) -> None:
    publisher = Publisher(cast(Any, RefusingSocket()), 0)
    publisher.publish("job:pushed", {"jobId": "a"})
    publisher.flush()
    engine = make_engine(tmp_path / "s.db", FakeClock(), events=publisher)
    stats = call(engine, p.GetStats())
    assert isinstance(stats, p.ShardStats) and stats.events_dropped == 1


def test_the_aggregator_counts_refused_events() -> None:
    aggregator = SimpleNamespace(xpub=RefusingSocket(), events_dropped=0)
    Aggregator.publish(cast(Any, aggregator), "cron:fired", {"name": "c"})
    assert aggregator.events_dropped == 1


def test_a_whsec_secret_that_is_not_base64_is_used_as_written_and_counted() -> None:
    before = webhooks.counters["secretsNotBase64"]
    assert webhooks.signing_key("whsec_abc") == b"whsec_abc"
    assert webhooks.signing_key("whsec_YWJj") == b"abc"
    assert webhooks.counters["secretsNotBase64"] == before + 1
