"""Cron expressions (5 fields, 6 with leading seconds, @aliases, via croniter) and IANA time zones: checked by
the front when a cron is registered, and stepped by the aggregator when it fires, so that neither imports
the other."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import TYPE_CHECKING

from bunq.errors import BadRequest

if TYPE_CHECKING:
    from croniter import croniter


def schedule_iterator(expression: str, start: datetime.datetime) -> croniter:
    """Imported here, when a schedule is first used: croniter and its dependencies cost every process that
    loads this module ~5 MB, and most never see a cron."""
    from croniter import croniter

    fields = expression.split()
    return croniter(expression, start, second_at_beginning=len(fields) == 6)


FIELDS = "Cron expression must have 5 fields, or 6 fields with leading seconds"  # the reference's words
ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")  # croniter's


def check_expression(expression: str) -> None:
    """A 400 in the reference's words for a wrong number of fields, naming an alias bunq does not know, else
    croniter's reason."""
    fields = expression.split()
    if fields and fields[0].startswith("@"):
        if len(fields) != 1 or fields[0].lower() not in ALIASES:
            raise BadRequest(f"Invalid cron expression: unknown alias {fields[0]} (known: {', '.join(ALIASES)})")
    elif len(fields) not in (5, 6):
        raise BadRequest(f"Invalid cron expression: {FIELDS}")
    try:
        schedule_iterator(expression, datetime.datetime.now(datetime.UTC)).get_next(datetime.datetime)
    except (ValueError, KeyError) as exc:
        raise BadRequest(f"Invalid cron expression: {exc}") from None


def check_timezone(name: str) -> None:
    """An IANA time zone name, or a 400. Besides the names it does not know, `ZoneInfo` raises OSError for
    what is a directory of the database (`America`, `Etc`) or a name too long for a file name."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise BadRequest(f"Unknown timezone: {name}") from None
