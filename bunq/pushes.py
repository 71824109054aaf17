"""A push's body, one job or a bulk of them, checked into the `NewJob`s the shards receive.

Beyond the spec's fields, a push takes ws-commands.md's `PUSH` options (`parentId` and a child's failure
policy, `dedup`, `debounceId`/`debounceTtl`), read into one `PushOptions` that a plain push goes without.

Two paths give one answer. The common body, every field of its exact type and in range, is decoded and
checked by msgspec in C (`StrictPush`). Any other body (a float where an integer goes, a null, a value
out of range, a wrong type) is decoded loosely and checked field by field (`PushBody`, `new_job`), which
accepts what the spec accepts and words its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from bunq.errors import BadRequest
from bunq.protocol import FlowPolicy, NewJob, PushOptions
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


def _custom_id(job_id: str | None) -> str | None:
    """A client's job id names the job in URL paths (`/jobs/:id`), where a `/` would split it."""
    if job_id is not None and "/" in job_id:
        raise BadRequest("jobId must not contain '/'")
    return job_id


Priority = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
Delay = Annotated[int, msgspec.Meta(ge=0, le=YEAR_MS)]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=1000)]
DayMs = Annotated[int, msgspec.Meta(ge=0, le=DAY_MS)]
YearMs = Annotated[int, msgspec.Meta(ge=0, le=YEAR_MS)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern="^[^/]*$")]
Texts = Annotated[tuple[Annotated[str, msgspec.Meta(max_length=MAX_STRING)], ...], msgspec.Meta(max_length=MAX_LIST)]


POLICIES = {
    "failParentOnFailure": FlowPolicy.FAIL,
    "removeDependencyOnFailure": FlowPolicy.REMOVE,
    "ignoreDependencyOnFailure": FlowPolicy.IGNORE,
    "continueParentOnFailure": FlowPolicy.CONTINUE,
}

# The options' body fields, after the spec's. A push that sets none of them (each absent, null or false) is
# the strict path's; one that sets any fails it and is read by hand (`push_options`), so the common push
# pays for them only the decoding of absent fields.
OPTIONS = (
    "parent_id", "fail_parent_on_failure", "remove_dependency_on_failure", "ignore_dependency_on_failure",
    "continue_parent_on_failure", "dedup", "debounce_id", "debounce_ttl",
)  # fmt: skip
_UNSET: dict[str, Any] = {f: (Literal[False], False) if f.endswith("_on_failure") else (None, None) for f in OPTIONS}
# `attempts`: the reference's (and BullMQ's) name for `maxAttempts`, read when `maxAttempts` is absent.
# A push that sends it takes the checks by hand too.
ALIASES = ("attempts",)


def push_options(values: tuple[Any, ...], unique_key: str | None) -> PushOptions | None:
    """The options of a push (`values`: OPTIONS' fields as sent), checked; None when they ask for nothing (a
    policy without a parent has no parent to act on, as on the reference)."""
    parent_id, fail, remove, ignore, go_on, dedup, debounce_id, debounce_ttl = values
    parent = string("parentId", parent_id, max_length=MAX_ID_LENGTH)
    chosen = [
        policy
        for (name, policy), on in zip(POLICIES.items(), (fail, remove, ignore, go_on), strict=True)
        if flag(name, on)
    ]
    if len(chosen) > 1:
        raise BadRequest("flow failure policies are mutually exclusive")
    ttl, extend, replace = _dedup(dedup, unique_key)
    debounce = string("debounceId", debounce_id)
    debounce_window = number("debounceTtl", debounce_ttl, 1, YEAR_MS)
    if (debounce is None) != (debounce_window is None):
        raise BadRequest("debounceId and debounceTtl go together")
    if parent is None and ttl is None and not extend and not replace and debounce is None:
        return None
    policy = chosen[0] if chosen and parent is not None else None
    return PushOptions(parent, 0, policy, ttl, extend, replace, debounce, debounce_window)


def _dedup(value: Any, unique_key: str | None) -> tuple[int | None, bool, bool]:
    if value is None:
        return None, False, False
    if not isinstance(value, dict):
        raise BadRequest("dedup must be an object")
    ttl = number("dedup.ttl", value.get("ttl"), 1, YEAR_MS)
    extend = flag("dedup.extend", value.get("extend"))
    replace = flag("dedup.replace", value.get("replace"))
    if unique_key is None and (ttl is not None or extend or replace):
        raise BadRequest("dedup needs uniqueKey (its deduplication id)")
    return ttl, extend, replace


# A push's fields are `NewJob`'s (bunq.protocol), declared once there. Each has a rule here: the exact
# type it has in a body that needs no checks by hand (checked by msgspec in C), and the check by hand for
# every other body, which accepts what the spec accepts and words its errors.
FIELDS = tuple(f for f in NewJob.__struct_fields__ if f not in ("id", "options"))  # `id` is made here, never sent
RAW = ("data", "repeat")  # kept as the client's JSON
RULES: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "data": (msgspec.Raw, job_data),
    "priority": (Priority, lambda v: number("priority", v, -1_000_000, 1_000_000, integer=True, default=0) or 0),
    "delay": (Delay, lambda v: number("delay", v, 0, YEAR_MS, default=0) or 0),
    "max_attempts": (Attempts, lambda v: number("maxAttempts", v, 1, 1000, integer=True, default=3) or 3),
    "backoff": (DayMs, lambda v: number("backoff", v, 0, DAY_MS, default=1000) or 0),
    "ttl": (YearMs | None, lambda v: number("ttl", v, 0, YEAR_MS)),
    "timeout": (DayMs | None, lambda v: number("timeout", v, 0, DAY_MS)),
    "unique_key": (Text | None, lambda v: string("uniqueKey", v)),
    "job_id": (Id | None, lambda v: _custom_id(string("jobId", v, max_length=MAX_ID_LENGTH))),
    "tags": (Texts, lambda v: tuple(strings("tags", v))),
    "group_id": (Text | None, lambda v: string("groupId", v)),
    "lifo": (bool, lambda v: flag("lifo", v)),
    "remove_on_complete": (bool, lambda v: flag("removeOnComplete", v)),
    "remove_on_fail": (bool, lambda v: flag("removeOnFail", v)),
    "durable": (bool, lambda v: flag("durable", v)),
    "depends_on": (Texts, lambda v: tuple(strings("dependsOn", v))),
    "repeat": (msgspec.Raw, repeat_spec),
    "name": (Text, lambda v: string("name", v) or "default"),
}
_DEFAULTS = dict(zip(NewJob.__struct_fields__[1:], NewJob.__struct_defaults__, strict=True))  # all but `data`
_REPEAT = FIELDS.index("repeat")
_JOB_ID = FIELDS.index("job_id")
_UNIQUE_KEY = FIELDS.index("unique_key")
_MAX_ATTEMPTS = FIELDS.index("max_attempts")
_CORE = len(FIELDS)
_ATTEMPTS = _CORE + len(OPTIONS)  # ALIASES' one field, after OPTIONS
_CHECKS = tuple(RULES[f][1] for f in FIELDS)
assert FIELDS[0] == "data" and set(RULES) == set(FIELDS), "every push field needs its rule"

StrictPush = msgspec.defstruct(
    "StrictPush",
    [
        *((f, RULES[f][0], msgspec.Raw() if f in RAW else _DEFAULTS[f]) for f in FIELDS),
        *((f, *_UNSET[f]) for f in OPTIONS),
        *((f, None, None) for f in ALIASES),
    ],
    rename="camel",
)
"""A push whose every field has its exact type and is in range: what `new_job` would accept unchanged.
Anything else (a float where an integer goes, a null, a value out of range) fails here and takes the
checks by hand, which accept what they accept and word the error the spec's way."""

PushBody = msgspec.defstruct(
    "PushBody",
    [
        *((f, msgspec.Raw if f in RAW else Any, msgspec.Raw() if f in RAW else None) for f in FIELDS),
        *((f, Any, None) for f in OPTIONS),
        *((f, Any, None) for f in ALIASES),
    ],
    rename="camel",
)
"""A push as sent: `data` and `repeat` stay raw JSON; everything else is checked by hand for clear messages."""


class StrictBulk(msgspec.Struct):
    jobs: Annotated[list[StrictPush], msgspec.Meta(max_length=100_000)]  # type: ignore[valid-type]


class BulkBody(msgspec.Struct):
    jobs: list[PushBody] | None = None  # type: ignore[valid-type]


_strict_push = msgspec.json.Decoder(StrictPush)
_strict_bulk = msgspec.json.Decoder(StrictBulk)
_push_decoder = msgspec.json.Decoder(PushBody)
_bulk_decoder = msgspec.json.Decoder(BulkBody)


def _strict_job(body: msgspec.Struct, slot: int) -> NewJob:
    values = list(msgspec.structs.astuple(body))  # FIELDS, then OPTIONS and ALIASES (all unset here)
    del values[_CORE:]
    data = values[0]
    if not data or len(data) > MAX_DATA_BYTES:
        raise BadRequest("data is required" if not data else "Job data too large (max 10MB)")
    values[0] = bytes(data)
    repeat = values[_REPEAT]
    values[_REPEAT] = repeat_spec(repeat) if repeat else None
    values.append(None if values[_JOB_ID] else new_job_id(slot))
    return NewJob(*values)  # positionally, in FIELDS order


def push_body(body: bytes, slot: int) -> NewJob:
    """The job of `POST /queues/:q/jobs`; `slot` is its queue's, for the id made here."""
    check_text(body)
    try:
        strict = _strict_push.decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        return new_job(decode_checked(_push_decoder, body), slot)
    return _strict_job(strict, slot)


def new_job(body: msgspec.Struct, slot: int) -> NewJob:
    """A loosely read push checked field by field, in `NewJob`'s order (the first refusal is the error)."""
    fields = msgspec.structs.astuple(body)  # FIELDS, then OPTIONS, then ALIASES
    values = [check(value) for check, value in zip(_CHECKS, fields[:_CORE], strict=True)]
    attempts = fields[_ATTEMPTS]
    if attempts is not None and fields[_MAX_ATTEMPTS] is None:
        values[_MAX_ATTEMPTS] = number("maxAttempts", attempts, 1, 1000, integer=True)  # worded as the reference
    options = push_options(fields[_CORE:_ATTEMPTS], values[_UNIQUE_KEY])
    return NewJob(*values, None if values[_JOB_ID] else new_job_id(slot), options)  # type: ignore[call-arg]


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
