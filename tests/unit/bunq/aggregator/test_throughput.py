"""The aggregator's throughput: per second between its last two snapshots, kept for the fronts (their
`DashboardOverview`), while `stats:snapshot` keeps its own two rates."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from bunq.aggregator import monitor as monitor_mod
from bunq.aggregator.monitor import Monitor
from bunq.settings import Thresholds
from bunq.stats import Merged


def test_rates_are_the_totals_moved_per_second_between_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(monitor_mod.time, "monotonic", lambda: now[0])
    published: list[tuple[str, dict[str, Any]]] = []
    registry = SimpleNamespace(workers={}, crons={})
    monitor = Monitor(
        cast(Any, None),
        cast(Any, registry),
        cast(Any, registry),
        lambda name, data: published.append((name, data)),
        Thresholds(),
        cast(Any, None),
    )
    monitor.snapshot(Merged(totals={"pushed": 10, "pulled": 5, "completed": 0, "failed": 0}))
    assert monitor.rates == {"pushPerSec": 0.0, "pullPerSec": 0.0, "completePerSec": 0.0, "failPerSec": 0.0}
    now[0] += 5
    monitor.snapshot(Merged(totals={"pushed": 60, "pulled": 30, "completed": 20, "failed": 2}))
    assert monitor.rates == {"pushPerSec": 10.0, "pullPerSec": 5.0, "completePerSec": 4.0, "failPerSec": 0.4}
    name, data = published[-1]
    assert name == "stats:snapshot" and (data["pushPerSec"], data["pullPerSec"]) == (10.0, 5.0)
    assert "completePerSec" not in data
