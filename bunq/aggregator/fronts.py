"""Open connections of every front, as each reports them to the aggregator: the totals `GET /health` and
`health:status` show. A front that has not reported for `EXPIRE_MS` (it died, or lost its link) no longer
counts, so its connections do not linger in the totals."""

from __future__ import annotations

from collections.abc import Callable

from bunq import protocol as p

EXPIRE_MS = 6_000  # three missed heartbeats (bunq.connections.REFRESH_S)


class FrontConnections:
    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.fronts: dict[str, tuple[int, int, int, int, int]] = {}  # front → (tcp, ws, sse, http, reported at ms)

    def report(self, cmd: p.ReportConnections) -> p.ConnectionCounts:
        """Record a front's counts and answer the totals, that front's fresh counts included."""
        self.fronts[cmd.front] = (cmd.tcp, cmd.ws, cmd.sse, cmd.http, self.clock())
        return self.totals()

    def totals(self) -> p.ConnectionCounts:
        cutoff = self.clock() - EXPIRE_MS
        self.fronts = {front: entry for front, entry in self.fronts.items() if entry[4] > cutoff}
        tcp = ws = sse = http = 0
        for front_tcp, front_ws, front_sse, front_http, _ in self.fronts.values():
            tcp += front_tcp
            ws += front_ws
            sse += front_sse
            http += front_http
        return p.ConnectionCounts(tcp, ws, sse, http)
