"""The aggregator's totals of every front's connections: fresh reports summed, silent fronts expired."""

from __future__ import annotations

from bunq import protocol as p
from bunq.aggregator.fronts import EXPIRE_MS, FrontConnections
from tests.support.clock import FakeClock


def test_totals_sum_every_front_and_forget_silent_ones() -> None:
    clock = FakeClock()
    fronts = FrontConnections(clock)
    assert fronts.report(p.ReportConnections("a", tcp=3, ws=2, sse=1)) == p.ConnectionCounts(3, 2, 1)
    assert fronts.report(p.ReportConnections("b", tcp=5, ws=4, sse=0)) == p.ConnectionCounts(8, 6, 1)
    assert fronts.report(p.ReportConnections("a", tcp=1, ws=0, sse=1)) == p.ConnectionCounts(6, 4, 1)
    clock.advance(EXPIRE_MS - 1)
    assert fronts.report(p.ReportConnections("a", tcp=1, ws=0, sse=1)) == p.ConnectionCounts(6, 4, 1)
    clock.advance(1)  # "b" has not reported for EXPIRE_MS: it died or lost its link
    assert fronts.totals() == p.ConnectionCounts(1, 0, 1)
    assert set(fronts.fronts) == {"a"}
