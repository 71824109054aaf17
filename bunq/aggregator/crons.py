"""Cron schedules: 5-field, 6-field (leading seconds) and @aliases via croniter, in an IANA time zone,
or a fixed `repeatEvery`. Each fire pushes one job whose id is derived from (name, scheduled time), so a
fire repeated after a crash finds the job it already pushed instead of pushing a second one."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

from bunq.aggregator.store import Records, RegistryStore
from bunq.errors import BunqError
from bunq.protocol import CronEntry
from bunq.schedules import schedule_iterator

log = logging.getLogger("bunq.crons")


Cron = CronEntry  # stored as it is encoded; its spec is what `AddCron` carried


def next_run(cron: Cron, after_ms: int) -> int:
    """The first scheduled time strictly after `after_ms` (wall-clock ms), in the cron's own zone."""
    if cron.repeat_every is not None:
        return after_ms + cron.repeat_every
    assert cron.schedule is not None
    zone = zoneinfo.ZoneInfo(cron.timezone)
    start = datetime.datetime.fromtimestamp(after_ms / 1000, zone)
    following: datetime.datetime = schedule_iterator(cron.schedule, start).get_next(datetime.datetime)
    return int(following.timestamp() * 1000)


def fire_seed(cron: Cron, scheduled: int) -> int:
    """62 stable bits naming one fire of one cron (the random part of its job's UUID v7)."""
    digest = hashlib.sha256(f"{cron.name}\0{scheduled}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


KIND = "cron"
MISSED_GRACE_MS = 1_000
MAX_CATCH_UP = 10_000


class CronTable:
    """The crons, their persistence, and firing: one job per scheduled time, even across crashes.

    A fire pushes first (with the fire's deterministic job id) and records the execution after; a crash
    in between makes the next start fire the same time again, which finds the job already there."""

    def __init__(
        self,
        store: RegistryStore,
        push: Callable[[Cron, int], Awaitable[None]],
        publish: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], int],
    ) -> None:
        self.push = push
        self.publish = publish
        self.clock = clock
        self.records = Records(store, KIND, Cron, lambda cron: cron.name, "Cron job not found")
        self.crons = self.records.items  # read-only: the records write it
        self.changed = asyncio.Event()

    def upsert(self, cron: Cron) -> Cron:
        now = self.clock()
        old = self.crons.get(cron.name)
        cron.created_at = old.created_at if old else now
        cron.executions = old.executions if old else 0
        cron.last_run = old.last_run if old else None
        cron.next_run = next_run(cron, now)
        self.records.save(cron)
        if old is None:
            event = {"name": cron.name, "queue": cron.queue, "pattern": cron.schedule, "every": cron.repeat_every}
            self.publish("cron:created", {**event, "nextRun": cron.next_run})
        else:
            self.publish("cron:updated", {"name": cron.name, "queue": cron.queue, "nextRun": cron.next_run})
        self.changed.set()
        return cron

    def get(self, name: str) -> Cron:
        return self.records.get(name)

    def delete(self, name: str) -> None:
        self.get(name)
        self.records.delete(name)
        self.publish("cron:deleted", {"name": name})

    def catch_up(self) -> None:
        """At start: a cron whose time passed while the server was down fires once (`cron:missed`), and
        any further times it missed are skipped (`cron:skipped`)."""
        now = self.clock()
        for cron in self.crons.values():
            if cron.next_run >= now - MISSED_GRACE_MS:
                continue
            latest, missed = cron.next_run, 1
            while missed < MAX_CATCH_UP and (following := next_run(cron, latest)) <= now:
                latest, missed = following, missed + 1
            error = f"missed {missed} run(s) while the server was down"
            self.publish("cron:missed", {"name": cron.name, "queue": cron.queue, "error": error})
            if missed > 1:
                reason = f"{missed - 1} missed run(s) skipped; the latest fires once"
                self.publish("cron:skipped", {"name": cron.name, "queue": cron.queue, "reason": reason})
            cron.next_run = latest

    async def fire(self, cron: Cron) -> None:
        scheduled = cron.next_run
        await self.push(cron, scheduled)
        cron.executions += 1
        cron.last_run = scheduled
        self.publish("cron:fired", {"name": cron.name, "queue": cron.queue})
        if cron.max_limit is not None and cron.executions >= cron.max_limit:
            self.delete(cron.name)
            return
        cron.next_run = next_run(cron, max(scheduled, self.clock()))
        self.records.save(cron)

    async def fire_due(self) -> int:
        """Fire every cron that is due, earliest first; the time the next one is due."""
        now = self.clock()
        for cron in sorted((c for c in self.crons.values() if c.next_run <= now), key=lambda c: c.next_run):
            if self.crons.get(cron.name) is not cron:
                continue  # deleted, or replaced, by an earlier fire (its limit)
            try:
                await self.fire(cron)
            except BunqError as exc:
                log.warning("cron %s could not push (%s); retrying", cron.name, exc.message)
        return min((c.next_run for c in self.crons.values()), default=now + 1000)

    async def run(self) -> None:
        """Fire every due cron; sleep until the next one (or until the table changes)."""
        self.catch_up()
        while True:
            upcoming = await self.fire_due()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), max(0.01, min(1.0, (upcoming - self.clock()) / 1000)))
