"""What a contract test holds: an HTTP client on bunq, and time. Two implementations of one interface:

- `InProcess`: the app over `InProcessShards` (engines and registries on a fake clock) through
  Starlette's TestClient; `advance` moves the clock, nothing sleeps.
- `Processes`: `bunq serve` over real sockets; `advance` sleeps, since its clock is the wall's.

Both `eventually` poll a condition that another task or process makes true (a webhook delivery, a
cross-shard message), so a test states what it waits for instead of how long.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import httpx
from starlette.testclient import TestClient

from tests.support.inprocess import InProcessShards
from tests.support.processes import wait_until

PARKED_WAIT_S = 10.0

T = TypeVar("T")


class Cluster(Protocol):
    name: str
    http: httpx.Client

    def advance(self, ms: int) -> None:
        """Let `ms` milliseconds pass on bunq's clock, and what came due in them happen."""

    def now(self) -> int:
        """bunq's clock, in wall-clock milliseconds."""

    def wait_parked(self, count: int = 1) -> None:
        """Return once bunq holds `count` calls open (long polls, job waits) sent from other threads."""

    def parked_for(self, call: Callable[[], T], ms: int) -> T:
        """`call()`, a request bunq holds open for `ms` (a long poll, a job wait), run while `ms` pass; its
        result, after checking that bunq did hold it that long."""

    def eventually(self, predicate: Callable[[], object], timeout: float = 20.0) -> None:
        """Return once `predicate()` is true; fail after `timeout` seconds."""


class InProcess:
    name = "in-process"

    def __init__(self, http: TestClient, shards: InProcessShards) -> None:
        self.http = http
        self.shards = shards

    def _portal_call(self, fn: Callable[..., object], *args: object) -> object:
        assert self.http.portal is not None, "the TestClient must be entered (`with TestClient(app)`)"
        return self.http.portal.call(fn, *args)

    def advance(self, ms: int) -> None:
        self._portal_call(self.shards.advance, ms)

    def now(self) -> int:
        return self.shards.clock()

    def parked_for(self, call: Callable[[], T], ms: int) -> T:
        outcome: list[T] = []
        thread = threading.Thread(target=lambda: outcome.append(call()))
        parked = self.shards.parked()
        thread.start()
        self.wait_parked(parked + 1)
        self.advance(ms - 1)
        assert thread.is_alive(), "answered before its time"
        self.advance(1)
        thread.join(PARKED_WAIT_S)
        assert outcome, "still held after its time"
        return outcome[0]

    def wait_parked(self, count: int = 1) -> None:
        self._portal_call(self._until_parked, count)

    async def _until_parked(self, count: int) -> None:
        deadline = time.monotonic() + PARKED_WAIT_S
        while self.shards.parked() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.shards.parked()} calls parked, {count} expected")
            await asyncio.sleep(0)  # the other thread's request runs on this loop

    def eventually(self, predicate: Callable[[], object], timeout: float = 20.0) -> None:
        wait_until(predicate, timeout)


class Processes:
    name = "processes"

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def advance(self, ms: int) -> None:
        time.sleep(ms / 1000)

    def now(self) -> int:
        return time.time_ns() // 1_000_000

    def parked_for(self, call: Callable[[], T], ms: int) -> T:
        started = time.monotonic()
        result = call()
        assert time.monotonic() - started >= (ms - 10) / 1000, "answered before its time"
        return result

    def wait_parked(self, count: int = 1) -> None:
        time.sleep(0.3)  # a call in flight cannot be seen from outside; it reaches its shard well within this

    def eventually(self, predicate: Callable[[], object], timeout: float = 20.0) -> None:
        wait_until(predicate, timeout)
