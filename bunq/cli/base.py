"""What every operator command shares: the connection settings (`--url`, `--token`, `--json`, given on the group
or on the command), the SDK client made from them, the one-line error every failure ends in, and output helpers
(JSON for scripts, Rich tables and times for people)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from bunq.sdk import BunqError, Client, TransportError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "http://127.0.0.1:6790"
PIPE_WIDTH = 200  # a table written to a pipe or file is this wide (unless COLUMNS says), not cut at 80 columns

_encode = msgspec.json.Encoder().encode


class Failure(click.ClickException):
    """A command that could not do what was asked: `bunq: <message>` on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"bunq: {self.message}", err=True)


def describe(exc: BunqError, url: str) -> str:
    """An SDK error as the one line the user reads."""
    if isinstance(exc, TransportError):
        return f"cannot reach {url} ({exc.error})"
    return f"{exc.error} (HTTP {exc.status})" if exc.status else exc.error


@dataclass
class State:
    """The connection settings of this invocation, and the client made from them on first use."""

    url: str = DEFAULT_URL
    token: str | None = None
    json: bool = False
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.token)
            click.get_current_context().call_on_close(self._client.close)
        return self._client


pass_state = click.make_pass_decorator(State, ensure=True)


def _override(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A connection option given after the command name wins over the group's (and its environment variable)."""
    if value is not None and value is not False and param.name is not None:
        setattr(ctx.ensure_object(State), param.name, value)
    return value


def connection_options(command: F) -> F:
    """`--url`, `--token` and `--json` on a command, as on the group, so that they may follow the command name."""
    options = [
        click.option("--url", default=None, expose_value=False, callback=_override, help="Server URL."),
        click.option("--token", default=None, expose_value=False, callback=_override, help="Bearer token."),
        click.option("--json", is_flag=True, expose_value=False, callback=_override, help="Machine output."),
    ]
    for option in options:
        command = option(command)
    return command


# -- output --------------------------------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """JSON-ready builtins: SDK structs under their wire (camelCase) names."""
    return msgspec.to_builtins(value)


def echo_json(value: Any) -> None:
    """One value as one line of JSON on stdout."""
    click.echo(_encode(value).decode())


def compact(value: Any) -> str:
    """A JSON value on one line, for a table cell or an event line."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def parse_json_or_text(text: str) -> Any:
    """A command-line DATA argument: JSON if it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def console(stderr: bool = False) -> Console:
    """A Rich console; writing to a pipe, it is wide enough that ids and queue names are not cut."""
    out = Console(stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


def when(ms: int | None) -> str:
    """A server timestamp (epoch milliseconds) as local time; `-` for none."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]], numeric: int = 0) -> Table:
    """A table whose last `numeric` columns are right-aligned numbers."""
    names = list(columns)
    grid = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(names):
        right = i >= len(names) - numeric
        grid.add_column(name, justify="right" if right else "left", overflow="fold")
    for row in rows:
        grid.add_row(*("-" if cell is None else str(cell) for cell in row))
    return grid


def print_table(grid: Table) -> None:
    console().print(grid)


def done(state: State, text: str, value: dict[str, Any]) -> None:
    """What a command that changed something prints: `text`, or `value` as JSON with --json."""
    if state.json:
        echo_json(value)
    else:
        click.echo(text)


def confirm(question: str, yes: bool) -> None:
    """Ask before something that cannot be undone (unless --yes); a refusal changes nothing and exits 1."""
    if yes:
        return
    if not click.confirm(question, default=False, err=True):
        raise Failure("not confirmed; nothing changed (pass --yes to skip the question)")


def flush() -> None:
    sys.stdout.flush()
