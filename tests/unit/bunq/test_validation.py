"""The push validator's two paths agree: the strict one msgspec runs in C for the common body, and the
checks by hand that every other body takes (and that word the spec's errors)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bunq import pushes
from bunq import validation as v
from bunq.errors import BunqError
from bunq.protocol import NewJob
from bunq.routing import slot_of_id
from bunq.validation import decode_checked

VALID = {
    "priority": st.integers(-1_000_000, 1_000_000),
    "delay": st.integers(0, v.YEAR_MS),
    "maxAttempts": st.integers(1, 1000),
    "backoff": st.integers(0, v.DAY_MS),
    "ttl": st.integers(0, v.YEAR_MS),
    "timeout": st.integers(0, v.DAY_MS),
    "uniqueKey": st.text(min_size=1, max_size=3),
    "jobId": st.text(min_size=1, max_size=3),
    "tags": st.lists(st.text(max_size=2), max_size=3),
    "groupId": st.text(min_size=1, max_size=2),
    "lifo": st.booleans(),
    "removeOnComplete": st.booleans(),
    "removeOnFail": st.booleans(),
    "durable": st.booleans(),
    "dependsOn": st.lists(st.text(min_size=1, max_size=3), max_size=2),
    "repeat": st.sampled_from([{"every": 10}, {"cron": "* * * * *"}, {"every": 5, "limit": 2}]),
    "name": st.text(min_size=1, max_size=3),
}
EDGES = {  # just outside what is valid, or valid in another type, or absent by null
    "priority": st.sampled_from([1_000_001, -1_000_001, 5.0, 5.5, None, True, "1", 2**70]),
    "delay": st.sampled_from([-1, v.YEAR_MS + 1, 1.5, None, float("inf")]),
    "maxAttempts": st.sampled_from([0, 1001, 3.0, "3", None]),
    "backoff": st.sampled_from([-1, v.DAY_MS + 1, None, 10.0]),
    "ttl": st.sampled_from([-1, v.YEAR_MS + 1, None, 0.5]),
    "timeout": st.sampled_from([-1, v.DAY_MS + 1, None]),
    "uniqueKey": st.sampled_from(["", "k" * 1024, "k" * 1025, None, 1]),
    "jobId": st.sampled_from(["", "i" * 1024, "i" * 1025, None, []]),
    "tags": st.sampled_from([None, ["t" * 1024], ["t" * 1025], [1], ["a"] * 1000, ["a"] * 1001, "a"]),
    "groupId": st.sampled_from(["", None, "g" * 1025]),
    "lifo": st.sampled_from([None, 1, "true"]),
    "removeOnComplete": st.sampled_from([None, 0]),
    "removeOnFail": st.sampled_from([None, "no"]),
    "durable": st.sampled_from([None, "yes"]),
    "dependsOn": st.sampled_from([None, [""], [1], "x"]),
    "repeat": st.sampled_from([None, {"every": 0}, {"cron": "x"}, 1, {}, {"every": 1, "cron": "* * * * *"}]),
    "name": st.sampled_from(["", None, "n" * 1025, 3]),
}
DATA = st.one_of(st.integers(), st.dictionaries(st.text(max_size=2), st.integers()), st.text(max_size=3))


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid push, then maybe one field set to an edge value, maybe `data` missing or null."""
    names = draw(st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=6))
    body: dict[str, Any] = {name: draw(VALID[name]) for name in names}
    if draw(st.booleans()):
        edge = draw(st.sampled_from(sorted(EDGES)))
        body[edge] = draw(EDGES[edge])
    data = draw(st.sampled_from(["value", "value", "value", "missing", "null"]))
    if data != "missing":
        body["data"] = None if data == "null" else draw(DATA)
    return body


BODIES = bodies()


SLOT = 17


def outcome(check: Any, body: bytes) -> Any:
    """What a check makes of a body: its error, or its job(s) with the made ids checked and set aside."""
    try:
        result = check(body, SLOT)
    except BunqError as exc:
        return f"{exc.status} {exc.message}"
    jobs = result if isinstance(result, list) else [result]
    for job in jobs:
        assert (job.id is None) == (job.job_id is not None)  # an id is made only where the client chose none
        assert job.id is None or slot_of_id(job.id) == SLOT
    cleared = [msgspec.structs.replace(job, id=None) for job in jobs]
    return cleared if isinstance(result, list) else cleared[0]


def by_hand(body: bytes, slot: int) -> NewJob:
    return pushes.new_job(decode_checked(pushes._push_decoder, body), slot)


@settings(max_examples=1000, deadline=None)
@given(BODIES)
def test_both_paths_accept_and_refuse_the_same_pushes(body: dict[str, Any]) -> None:
    raw = msgspec.json.encode(body)
    assert outcome(pushes.push_body, raw) == outcome(by_hand, raw)


@settings(max_examples=150, deadline=None)
@given(st.lists(BODIES, max_size=4))
def test_both_paths_agree_on_bulk_pushes(jobs: list[dict[str, Any]]) -> None:
    raw = msgspec.json.encode({"jobs": jobs})

    def bulk_by_hand(body: bytes, slot: int) -> list[NewJob] | str:
        parsed = decode_checked(pushes._bulk_decoder, body)
        out: list[NewJob] = []
        for i, item in enumerate(parsed.jobs or []):
            try:
                out.append(pushes.new_job(item, slot))
            except BunqError as exc:
                raise type(exc)(f"jobs[{i}]: {exc.message}") from None
        return out

    assert outcome(pushes.bulk_body, raw) == outcome(bulk_by_hand, raw)


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": 1, "priority": 5.0}',
        b'{"data": 1, "priority": null}',
        b'{"data": 1, "delay": 1.5}',
        b"[1]",
        b"",
        b"{",
    ],
)
def test_bodies_the_strict_path_leaves_to_the_checks_by_hand(body: bytes) -> None:
    assert outcome(pushes.push_body, body) == outcome(by_hand, body)
