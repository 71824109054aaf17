"""A push's body, one job or a bulk of them, checked into the `NewJob`s the shards receive.

Two paths give one answer. The common body, every field of its exact type and in range, is decoded and
checked by msgspec in C (`StrictPush`). Any other body (a float where an integer goes, a null, a value
out of range, a wrong type) is decoded loosely and checked field by field (`PushBody`, `new_job`), which
accepts what the spec accepts and words its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec

from bunq.errors import BadRequest
from bunq.protocol import NewJob
from bunq.routing import new_job_id
from bunq.validation import (
    DAY_MS,
    MAX_DATA_BYTES,
    MAX_ID_LENGTH,
    MAX_LIST,
    MAX_STRING,
    YEAR_MS,
    check_text,
    decode_checked,
    flag,
    job_data,
    number,
    repeat_spec,
    string,
    strings,
)

T = TypeVar("T")


Priority = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
Delay = Annotated[int, msgspec.Meta(ge=0, le=YEAR_MS)]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=1000)]
DayMs = Annotated[int, msgspec.Meta(ge=0, le=DAY_MS)]
YearMs = Annotated[int, msgspec.Meta(ge=0, le=YEAR_MS)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Texts = Annotated[tuple[Annotated[str, msgspec.Meta(max_length=MAX_STRING)], ...], msgspec.Meta(max_length=MAX_LIST)]


class StrictPush(msgspec.Struct, rename="camel"):
    """A push whose every field has its exact type and is in range: what `new_job` would accept unchanged.
    Anything else (a float where an integer goes, a null, a value out of range) fails here and takes the
    checks by hand, which accept what they accept and word the error the spec's way."""

    data: msgspec.Raw = msgspec.Raw()
    priority: Priority = 0
    delay: Delay = 0
    max_attempts: Attempts = 3
    backoff: DayMs = 1000
    ttl: YearMs | None = None
    timeout: DayMs | None = None
    unique_key: Text | None = None
    job_id: Id | None = None
    tags: Texts = ()
    group_id: Text | None = None
    lifo: bool = False
    remove_on_complete: bool = False
    remove_on_fail: bool = False
    durable: bool = False
    depends_on: Texts = ()
    repeat: msgspec.Raw = msgspec.Raw()
    name: Text = "default"


class StrictBulk(msgspec.Struct):
    jobs: Annotated[list[StrictPush], msgspec.Meta(max_length=100_000)]


_strict_push = msgspec.json.Decoder(StrictPush)
_strict_bulk = msgspec.json.Decoder(StrictBulk)


def _strict_job(body: StrictPush, slot: int) -> NewJob:
    data = body.data
    if not data or len(data) > MAX_DATA_BYTES:
        raise BadRequest("data is required" if not data else "Job data too large (max 10MB)")
    repeat = body.repeat
    return NewJob(
        bytes(data),
        body.priority,
        body.delay,
        body.max_attempts,
        body.backoff,
        body.ttl,
        body.timeout,
        body.unique_key,
        body.job_id,
        body.tags,
        body.group_id,
        body.lifo,
        body.remove_on_complete,
        body.remove_on_fail,
        body.durable,
        body.depends_on,
        repeat_spec(repeat) if repeat else None,
        body.name,
        None if body.job_id else new_job_id(slot),
    )


class PushBody(msgspec.Struct):
    """A push as sent: `data` stays raw JSON; everything else is checked by hand for clear messages."""

    data: msgspec.Raw = msgspec.Raw()
    priority: Any = None
    delay: Any = None
    maxAttempts: Any = None
    backoff: Any = None
    ttl: Any = None
    timeout: Any = None
    uniqueKey: Any = None
    jobId: Any = None
    tags: Any = None
    groupId: Any = None
    lifo: Any = None
    removeOnComplete: Any = None
    removeOnFail: Any = None
    durable: Any = None
    dependsOn: Any = None
    repeat: msgspec.Raw = msgspec.Raw()
    name: Any = None


class BulkBody(msgspec.Struct):
    jobs: list[PushBody] | None = None


_push_decoder = msgspec.json.Decoder(PushBody)
_bulk_decoder = msgspec.json.Decoder(BulkBody)


def push_body(body: bytes, slot: int) -> NewJob:
    """The job of `POST /queues/:q/jobs`; `slot` is its queue's, for the id made here."""
    check_text(body)
    try:
        strict = _strict_push.decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        return new_job(decode_checked(_push_decoder, body), slot)
    return _strict_job(strict, slot)


def new_job(body: PushBody, slot: int) -> NewJob:
    data = job_data(body.data)
    job_id = string("jobId", body.jobId, max_length=MAX_ID_LENGTH)
    return NewJob(
        data=data,
        priority=number("priority", body.priority, -1_000_000, 1_000_000, integer=True, default=0) or 0,
        delay=number("delay", body.delay, 0, YEAR_MS, default=0) or 0,
        max_attempts=number("maxAttempts", body.maxAttempts, 1, 1000, integer=True, default=3) or 3,
        backoff=number("backoff", body.backoff, 0, DAY_MS, default=1000) or 0,
        ttl=number("ttl", body.ttl, 0, YEAR_MS),
        timeout=number("timeout", body.timeout, 0, DAY_MS),
        unique_key=string("uniqueKey", body.uniqueKey),
        job_id=job_id,
        tags=tuple(strings("tags", body.tags)),
        group_id=string("groupId", body.groupId),
        lifo=flag("lifo", body.lifo),
        remove_on_complete=flag("removeOnComplete", body.removeOnComplete),
        remove_on_fail=flag("removeOnFail", body.removeOnFail),
        durable=flag("durable", body.durable),
        depends_on=tuple(strings("dependsOn", body.dependsOn)),
        repeat=repeat_spec(body.repeat),
        name=string("name", body.name) or "default",
        id=None if job_id else new_job_id(slot),
    )


def bulk_body(body: bytes, slot: int) -> list[NewJob]:
    """The jobs of `POST /queues/:q/jobs/bulk`, in order; all are refused if one is."""
    check_text(body)
    try:
        strict = _strict_bulk.decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        return _bulk_by_hand(body, slot)
    return _each(strict.jobs, _strict_job, slot)


def _bulk_by_hand(body: bytes, slot: int) -> list[NewJob]:
    parsed: BulkBody = decode_checked(_bulk_decoder, body)
    if parsed.jobs is None:
        raise BadRequest("jobs is required")
    if len(parsed.jobs) > 100_000:
        raise BadRequest("jobs must have at most 100000 entries")
    return _each(parsed.jobs, new_job, slot)


def _each(items: list[T], convert: Callable[[T, int], NewJob], slot: int) -> list[NewJob]:
    """Every item converted; the first refusal names the item's position (`jobs[3]: ...`)."""
    jobs = []
    for i, item in enumerate(items):
        try:
            jobs.append(convert(item, slot))
        except BadRequest as exc:
            raise BadRequest(f"jobs[{i}]: {exc.message}") from None
    return jobs
