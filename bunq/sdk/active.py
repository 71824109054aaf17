"""What a handler gets: `ActiveJob`, the job it runs with `progress` and `log`, and `Sent`, what those return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from bunq.sdk.models import Job

if TYPE_CHECKING:
    from bunq.sdk.channel import JobChannel
    from bunq.sdk.worker import Worker


class Sent:
    """What `ActiveJob.progress` and `.log` return: awaiting it waits for the server's reply; not awaiting
    it is fine too (the request goes out anyway, in order). From a thread-pool handler the call itself
    blocks until the reply came, so there is nothing to await."""

    def __init__(self, task: asyncio.Future[None] | None) -> None:
        self.task = task

    def __await__(self) -> Generator[Any, None, None]:
        if self.task is not None:
            yield from self.task.__await__()


class ActiveJob:
    """The job a handler runs: `id`, `data`, `attempts` and the rest of the job (`job`), plus `progress` and
    `log`. `lost` turns true when the server took the lease away (the job will not be acked)."""

    __slots__ = ("job", "token", "_worker", "started", "extended", "lost", "channel")

    def __init__(self, job: Job, token: str | None, worker: Worker) -> None:
        self.job = job
        self.token = token
        self._worker = worker
        self.started = self.extended = time.monotonic()
        self.lost = False
        self.channel: JobChannel | None = None  # the WebSocket it was pulled on, if any

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def data(self) -> Any:
        return self.job.data

    @property
    def attempts(self) -> int:
        return self.job.attempts

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts

    @property
    def priority(self) -> int:
        return self.job.priority

    def progress(self, progress: float, message: str | None = None) -> Sent:
        """Report progress (0-100) with an optional message."""
        return self._worker.send(self._worker.client.progress(self.id, progress, message, token=self.token))

    def log(self, message: str, level: str = "info") -> Sent:
        """Add a line to the job's logs (`info`, `warn`, `error`)."""
        return self._worker.send(self._worker.client.log(self.id, message, level))

    def __repr__(self) -> str:
        return f"<ActiveJob {self.id} queue={self.queue!r} attempts={self.attempts}>"
