"""A shard killed under load: what its in-flight requests get, and how soon pushes succeed again."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bunq.routing import shard_of_slot, slot_of
from bunq.settings import DEFAULT_SLOTS
from tests.support.processes import BunqServer

log = logging.getLogger(__name__)

pytestmark = pytest.mark.integration

CLIENTS = 32
MAX_WALL_S = 60.0  # the whole load, however slow the machine
PUSHES_AFTER_RECOVERY = 200
BOUND_S = 5.0  # half the request timeout: a call left to its deadline fails; a restart on a busy machine passes


@dataclass
class Load:
    """What the producers saw: (started, ended, status) for every request, and the ids answered 200."""

    url: str
    queue: str
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[tuple[float, float, int]] = field(default_factory=list)
    durable_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def produce(self) -> None:
        deadline = time.monotonic() + MAX_WALL_S
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    r = client.post(f"/queues/{self.queue}/jobs", json={"data": {"n": 1}, "durable": True})
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(repr(exc))
                    continue
                ended = time.monotonic()
                with self.lock:
                    self.calls.append((started, ended, r.status_code))
                    if r.status_code == 200:
                        self.durable_ids.append(r.json()["id"])
                    elif r.status_code != 503 or r.json()["ok"] is not False:
                        self.failures.append(f"{r.status_code} {r.text}")

    def successes_started_after(self, moment: float) -> list[float]:
        with self.lock:
            return sorted(end for start, end, status in self.calls if status == 200 and start > moment)


def queues_on_shard(shard: int, shards: int) -> list[str]:
    names = (f"failover-{i}" for i in range(1000))
    return [q for q in names if shard_of_slot(slot_of(q, DEFAULT_SLOTS), shards) == shard]


def long_poll(url: str, queue: str, answers: list[tuple[float, int]]) -> None:
    """A worker parked on an empty queue for 30 s (far past the request timeout)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.get(f"/queues/{queue}/jobs", params={"timeout": 30_000})
        answers.append((time.monotonic(), r.status_code))


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def waiting_ids(client: httpx.Client, queue: str) -> set[str]:
    found: set[str] = set()
    for offset in range(0, 1_000_000, 10_000):
        page = client.get(f"/queues/{queue}/jobs/list", params={"state": "waiting", "limit": 10_000, "offset": offset})
        jobs = page.json()["jobs"]
        found.update(job["id"] for job in jobs)
        if len(jobs) < 10_000:
            return found
    raise AssertionError("more waiting jobs than the test ever pushes")


def test_a_killed_shard_fails_its_requests_at_once_and_pushes_resume(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=2)  # BUNQ_REQUEST_TIMEOUT_MS left at its 10 s
    server.start()
    busy, idle = queues_on_shard(1, 2)[:2]
    load = Load(server.url, busy)
    poll_answers: list[tuple[float, int]] = []
    threads = [threading.Thread(target=long_poll, args=(server.url, idle, poll_answers))]
    threads += [threading.Thread(target=load.produce) for _ in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(load.durable_ids) >= 300, timeout=30)  # the long poll is parked by then
        victim = server.children()["shard-1"]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(load.successes_started_after(killed_at)) >= PUSHES_AFTER_RECOVERY, timeout=30)
    finally:
        load.stop.set()
        for t in threads:
            t.join(MAX_WALL_S)
    try:
        assert server.children()["shard-1"] != victim
        gap = load.successes_started_after(killed_at)[0] - killed_at
        in_flight = [(s, e, code) for s, e, code in load.calls if s <= killed_at <= e]
        slowest = max(e - s for s, e, _ in load.calls)
        refused = sum(1 for *_, code in load.calls if code == 503)
        [(poll_answered, poll_status)] = poll_answers
        log.info(
            f"\nkill -9 of shard 1 under {CLIENTS} clients: first push accepted {gap:.3f} s after the kill; "
            f"{len(in_flight)} in flight at the kill answered within "
            f"{max((e - killed_at for _, e, _ in in_flight), default=0):.3f} s; slowest request {slowest:.3f} s; "
            f"{refused} answered 503 of {len(load.calls)}; the parked pull got {poll_status} "
            f"{poll_answered - killed_at:.3f} s after the kill"
        )
        assert not load.failures, load.failures[:5]
        assert slowest < BOUND_S, "a request waited for the request timeout instead of learning the shard was gone"
        assert gap < BOUND_S
        assert (poll_status, poll_answered - killed_at < BOUND_S) == (503, True), "a parked pull outlived its shard"
        with httpx.Client(base_url=server.url, timeout=30) as client:
            missing = set(load.durable_ids) - waiting_ids(client, load.queue)
        assert not missing, f"{len(missing)} durable pushes answered 200 are gone"
    finally:
        server.stop()
