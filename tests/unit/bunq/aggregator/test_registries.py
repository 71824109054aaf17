"""Aggregator pieces without processes: cron schedules (time zones, DST), signatures (SSRF: test_ssrf.py)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import time
import zoneinfo

import pytest
from standardwebhooks import Webhook as StandardWebhook

from bunq.aggregator.crons import Cron, CronTable, fire_seed, next_run
from bunq.aggregator.webhooks import check_events, signature_headers
from bunq.errors import BadRequest
from bunq.routing import new_job_id, slot_of_id
from bunq.schedules import check_expression

NY = zoneinfo.ZoneInfo("America/New_York")


def ms(dt: datetime.datetime) -> int:
    return int(dt.timestamp() * 1000)


def test_cron_next_run_in_new_york_across_the_spring_forward() -> None:
    cron = Cron("daily", "q", b"1", schedule="30 2 * * *", timezone="America/New_York")
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 → 03:00)
    before = ms(datetime.datetime(2026, 3, 7, 12, 0, tzinfo=NY))
    first = next_run(cron, before)
    # the skipped time runs once, right after the jump (as Vixie cron does), then the schedule resumes
    assert (
        ms(datetime.datetime(2026, 3, 8, 3, 0, tzinfo=NY))
        <= first
        <= ms(datetime.datetime(2026, 3, 8, 3, 30, tzinfo=NY))
    )
    assert next_run(cron, first) == ms(datetime.datetime(2026, 3, 9, 2, 30, tzinfo=NY))
    assert next_run(cron, first) - first < 24 * 3600 * 1000


def test_cron_next_run_in_new_york_across_the_fall_back() -> None:
    cron = Cron("nine", "q", b"1", schedule="0 9 * * *", timezone="America/New_York")
    # 2026-11-01: EDT (UTC-4) ends; 09:00 local is 13:00 UTC before, 14:00 UTC after
    saturday = next_run(cron, ms(datetime.datetime(2026, 10, 30, 10, 0, tzinfo=NY)))
    sunday = next_run(cron, saturday)
    assert saturday == ms(datetime.datetime(2026, 10, 31, 9, 0, tzinfo=NY))
    assert datetime.datetime.fromtimestamp(saturday / 1000, datetime.UTC).hour == 13
    assert sunday - saturday == 25 * 3600 * 1000  # the day of the change is an hour longer
    assert datetime.datetime.fromtimestamp(sunday / 1000, datetime.UTC).hour == 14


def test_six_field_cron_has_leading_seconds_and_aliases_work() -> None:
    every_ten_seconds = Cron("s", "q", b"1", schedule="*/10 * * * * *")
    start = ms(datetime.datetime(2026, 1, 1, 0, 0, 3, tzinfo=datetime.UTC))
    assert next_run(every_ten_seconds, start) == start + 7000
    daily = Cron("d", "q", b"1", schedule="@daily")
    assert next_run(daily, start) == ms(datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC))
    for bad in ("bad", "* * *", "61 * * * *"):
        with pytest.raises(BadRequest):
            check_expression(bad)


def test_fire_ids_are_deterministic_and_routable() -> None:
    cron = Cron("c", "q", b"1", repeat_every=1000)
    a = new_job_id(17, 1_700_000_000_000, fire_seed(cron, 1_700_000_000_000))
    b = new_job_id(17, 1_700_000_000_000, fire_seed(cron, 1_700_000_000_000))
    c = new_job_id(17, 1_700_000_001_000, fire_seed(cron, 1_700_000_001_000))
    assert a == b != c and slot_of_id(a) == 17


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], bytes] = {}

    def put(self, kind: str, key: str, blob: bytes) -> None:
        self.rows[(kind, key)] = blob

    def delete(self, kind: str, key: str) -> None:
        self.rows.pop((kind, key), None)

    def load(self, kind: str) -> list[tuple[str, bytes]]:
        return [(k, b) for (kd, k), b in self.rows.items() if kd == kind]


def test_cron_table_fires_until_max_limit_and_catches_up_once_after_downtime() -> None:
    now = [1_700_000_000_000]
    pushed: list[tuple[str, int]] = []
    events: list[str] = []

    async def push(cron: Cron, scheduled: int) -> None:
        pushed.append((cron.name, scheduled))

    store = MemoryStore()
    table = CronTable(store, push, lambda name, data: events.append(name), lambda: now[0])
    table.upsert(Cron("limited", "q", b"1", repeat_every=1000, max_limit=2))
    table.upsert(Cron("hourly", "q", b"1", schedule="0 * * * *"))

    async def fire_due() -> None:
        for cron in [c for c in table.crons.values() if c.next_run <= now[0]]:
            await table.fire(cron)

    for _ in range(5):
        now[0] += 1000
        asyncio.run(fire_due())
    assert [name for name, _ in pushed] == ["limited", "limited"]
    assert "limited" not in table.crons and ("cron", "limited") not in store.rows
    # down for three hours: the hourly cron fires once, the two earlier missed hours are skipped
    now[0] += 3 * 3600 * 1000 + 60_000
    restarted = CronTable(store, push, lambda name, data: events.append(name), lambda: now[0])
    restarted.catch_up()
    asyncio.run(fire_due_for(restarted, now[0]))
    assert [name for name, _ in pushed].count("hourly") == 1
    assert "cron:missed" in events and "cron:skipped" in events
    assert restarted.crons["hourly"].next_run > now[0]


async def fire_due_for(table: CronTable, now: int) -> None:
    for cron in [c for c in table.crons.values() if c.next_run <= now]:
        await table.fire(cron)


def test_signatures_verify_with_an_independent_implementation() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    body = json.dumps({"event": "job.completed", "jobId": "x"}).encode()
    now = int(time.time())
    headers = signature_headers(secret, "msg_1", now, body)
    standard = StandardWebhook(secret)
    verify_headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), **headers}
    assert standard.verify(body, verify_headers) == {"event": "job.completed", "jobId": "x"}
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Webhook-Signature"] == expected


def test_webhook_event_names() -> None:
    check_events(["completed", "job.failed", "pushed", "started"])
    with pytest.raises(BadRequest):
        check_events(["finished"])
    with pytest.raises(BadRequest):
        check_events([])
