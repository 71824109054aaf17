"""Static checks of the wiring: every command has a handler, every named SQL statement is used."""

from __future__ import annotations

import typing
from pathlib import Path

from bunq import protocol
from shards import sql
from shards.handlers import HANDLERS

ROOT = Path(__file__).resolve().parents[3]


def test_every_command_has_exactly_one_handler() -> None:
    commands = set(typing.get_args(protocol.AnyCommand))
    assert set(HANDLERS) == commands


def test_every_named_sql_statement_is_used() -> None:
    source = (ROOT / "shards" / "store.py").read_text()
    names = [n for n in dir(sql) if n.isupper()]
    unused = [n for n in names if f"sql.{n}" not in source]
    assert names and not unused


def test_every_aggregator_command_has_exactly_one_handler() -> None:
    from bunq.aggregator.core import HANDLERS as AGGREGATOR_HANDLERS

    assert set(AGGREGATOR_HANDLERS) == set(typing.get_args(protocol.AggregatorCommand))
