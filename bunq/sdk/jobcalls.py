"""`JobCalls`: how a `Worker`'s job calls travel. Pulls, acks, failures and lease heartbeats go over its
WebSocket (`JobChannel`) when it has one, else as HTTP requests through its `AsyncClient`.

Each call goes where the jobs it names came from: a job pulled on a channel is acked, failed and heartbeated
on that channel while it is open (the server ties the job to that connection); a job pulled over HTTP, one
whose channel has closed, or a command too large for a WebSocket message goes over HTTP, where the job's
lock token proves its lease just as well, and fencing refuses it where the lease is gone.
A server (or proxy) that refuses the upgrade turns the worker to HTTP for good, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bunq.sdk.active import ActiveJob
from bunq.sdk.aio import AsyncClient
from bunq.sdk.channel import JobChannel, NoWebSocket, TooLarge
from bunq.sdk.models import BatchResult, Lease

log = logging.getLogger("bunq.worker")

TRANSPORTS = ("websocket", "http")
Ack = tuple[ActiveJob, Any]  # a finished job and its result


class JobCalls:
    def __init__(self, client: AsyncClient, url: str, token: str | None, transport: str) -> None:
        self.client = client
        self.url = url
        self.token = token
        self.transport = transport
        self.channel: JobChannel | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> JobChannel | None:
        """The open channel (opened now if need be), or None when the calls go over HTTP."""
        if self.transport != "websocket":
            return None
        if self.channel is not None and not self.channel.closed:
            return self.channel
        async with self._opening:
            if self.channel is not None and not self.channel.closed:
                return self.channel
            channel = JobChannel(self.url, self.token, self.client.timeout)
            try:
                await channel.open()
            except NoWebSocket as exc:
                log.warning("%s: pulling over HTTP instead", exc.error)
                self.transport = "http"
                return None
            self.channel = channel
            return channel

    async def close(self) -> None:
        """Close the channel: the server gives back at once whatever is still held on it."""
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    async def pull(
        self, queue: str, count: int, timeout: int, owner: str, lock_ttl: int
    ) -> tuple[list[Lease], JobChannel | None]:
        """Up to `count` jobs, and the channel they came on (None: over HTTP)."""
        channel = await self.open()
        if channel is not None:
            return await channel.pull_batch(queue, count, timeout, owner, lock_ttl), channel
        return await self.client.pull_batch(queue, count, timeout, owner=owner, lock_ttl=lock_ttl), None

    async def ack(self, batch: list[Ack]) -> BatchResult:
        """One ACKB on the channel the jobs came from, or one `ack-batch` request."""
        ids = [a.id for a, _ in batch]
        results = [r for _, r in batch]
        tokens = [a.token for a, _ in batch]
        channel = batch[0][0].channel
        if channel is not None and not channel.closed and all(a.channel is channel for a, _ in batch):
            try:
                return await channel.batch({"cmd": "ACKB", "ids": ids, "results": results, "tokens": tokens})
            except TooLarge:
                pass
        return await self.client.ack_batch(ids, results, tokens)

    async def heartbeat(self, due: list[ActiveJob], lock_ttl: int) -> BatchResult:
        """Extend the leases of `due` by `lock_ttl` ms."""
        ids = [a.id for a in due]
        tokens = [a.token for a in due]
        durations = [lock_ttl] * len(due)
        channel = self.channel
        if channel is not None and not channel.closed and all(a.channel is channel for a in due):
            return await channel.batch({"cmd": "JobHeartbeatB", "ids": ids, "tokens": tokens, "durations": durations})
        return await self.client.heartbeat_batch(ids, tokens, durations)

    async def fail(self, active: ActiveJob, message: str) -> None:
        channel = active.channel
        if channel is not None and not channel.closed:
            await channel.fail(active.id, message, active.token)
        else:
            await self.client.fail(active.id, message, token=active.token)
