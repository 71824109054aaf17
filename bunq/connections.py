"""This front's open connections (HTTP, WebSocket, SSE), reported to the aggregator so that `GET /health`
counts every front's, whichever front answers it.

The counts change in three places (the HTTP protocol, the WebSocket and SSE routes), so they are sampled
every `SAMPLE_S` and sent when they changed, which coalesces bursts of connects for free; they are sent
every `REFRESH_S` anyway, as the heartbeat that keeps this front in the aggregator's totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from bunq import protocol as p
from bunq.client import Shards
from bunq.errors import BunqError
from bunq.httpconn import DeadlineHttpToolsProtocol

log = logging.getLogger("bunq.front")

SAMPLE_S = 0.1
REFRESH_S = 2.0
HEALTH_WAIT_S = 0.5  # a probe answers with this front's counts rather than wait longer for the aggregator


class ConnectionReport:
    def __init__(self, client: Shards, counts: dict[str, int]) -> None:
        self.client = client
        self.counts = counts  # "ws" and "sse", kept by the routes
        self.protocol_connections: Callable[[], int] = lambda: 0  # bunqueue TCP-protocol clients (bunq.tcp)
        self.front = uuid.uuid4().hex
        self.task: asyncio.Task[None] | None = None

    def local(self) -> dict[str, int]:
        """`tcp` is bunqueue-protocol clients, as the reference counts it (its HTTP connections are not
        counted anywhere); `http` is this front's HTTP connections, the upgraded ones left out, which only
        Prometheus shows (`bunqueue_connections{transport="http"}`)."""
        return {
            "tcp": self.protocol_connections(),
            "ws": self.counts["ws"],
            "sse": self.counts["sse"],
            "http": DeadlineHttpToolsProtocol.open_connections,
        }

    async def report(self, counts: dict[str, int], timeout_s: float) -> dict[str, int]:
        """Send `counts` as this front's; the totals over every front (errors and timeouts raised)."""
        command = p.ReportConnections(self.front, counts["tcp"], counts["ws"], counts["sse"], counts["http"])
        reply = await asyncio.wait_for(self.client.call_aggregator(command), timeout_s)
        if not isinstance(reply, p.ConnectionCounts):
            raise BunqError(f"Unexpected reply to ReportConnections: {type(reply).__name__}")
        return {"tcp": reply.tcp, "ws": reply.ws, "sse": reply.sse, "http": reply.http}

    async def totals(self) -> dict[str, int]:
        """Every front's counts, or this front's alone when the aggregator does not answer quickly."""
        counts = self.local()
        if not self.client.with_aggregator:
            return counts
        try:
            return await self.report(counts, HEALTH_WAIT_S)
        except (BunqError, TimeoutError) as exc:
            log.debug("connection totals unavailable, answering this front's: %s", exc)
            return counts

    def start(self) -> None:
        if self.client.with_aggregator:
            self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sent: dict[str, int] | None = None
        sent_at = 0.0
        while True:
            await asyncio.sleep(SAMPLE_S)
            counts = self.local()
            if counts == sent and loop.time() - sent_at < REFRESH_S:
                continue
            try:
                await self.report(counts, REFRESH_S)
            except (BunqError, TimeoutError):
                continue  # the aggregator is away: sent again on the next sample
            sent, sent_at = counts, loop.time()

    async def close(self) -> None:
        """Stop reporting, and take this front out of the totals at once (best effort)."""
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        with contextlib.suppress(BunqError, TimeoutError):
            await self.report({"tcp": 0, "ws": 0, "sse": 0, "http": 0}, HEALTH_WAIT_S)
