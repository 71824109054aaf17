"""The `bunq` Click application: the connection options, every operator command, and the server commands
(which `bunq.cli.main` normally runs before this module is even loaded; here for `--help` and for a server
command given after group options)."""

from __future__ import annotations

from typing import Any

import click

from bunq.cli import jobs, live, queues
from bunq.cli.base import DEFAULT_URL, Failure, State, describe
from bunq.sdk import BunqError


class BunqGroup(click.Group):
    """Every SDK error a command raises ends as one line (`bunq: <server error> (HTTP 404)`, `bunq: cannot
    reach <url> (...)`) and exit status 1, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # as added: the server's, then the operator's by topic

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BunqError as exc:
            state = ctx.find_object(State)
            raise Failure(describe(exc, state.url if state else DEFAULT_URL)) from None


@click.group(cls=BunqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="BUNQ_URL", default=DEFAULT_URL, show_default=True, help="Server URL (BUNQ_URL).")
@click.option("--token", envvar="BUNQ_TOKEN", help="Bearer token (BUNQ_TOKEN).")
@click.option("--json", "json_", is_flag=True, help="Machine output: JSON (lines) on stdout.")
@click.version_option(package_name="bunq", prog_name="bunq")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None, json_: bool) -> None:
    """bunq: run the server, or operate one (`--url`, `--token` and `--json` may also follow a command)."""
    ctx.obj = State(url=url, token=token or None, json=json_)


def _server(command: str, *args: str) -> None:
    from bunq.serve import main as serve_main

    serve_main([command, *args])


@cli.command(name="serve")
def serve() -> None:
    """Run everything on this host: aggregator, shards and front, supervised."""
    _server("serve")


@cli.command(name="front")
def front() -> None:
    """Run the HTTP front (uvicorn workers) alone."""
    _server("front")


@cli.command(name="shard")
@click.argument("index", type=click.IntRange(0))
def shard(index: int) -> None:
    """Run shard INDEX alone."""
    _server("shard", str(index))


@cli.command(name="aggregator")
def aggregator() -> None:
    """Run the aggregator alone."""
    _server("aggregator")


@cli.command(name="prepare")
def prepare() -> None:
    """Lay out (or reshard) the data directory for BUNQ_SHARDS; run once before the shards start."""
    _server("prepare")


COMMANDS = [
    jobs.push,
    jobs.import_,
    jobs.export,
    jobs.job,
    jobs.wait,
    jobs.cancel,
    jobs.retry,
    queues.queues,
    queues.pause,
    queues.resume,
    queues.drain,
    queues.clean,
    queues.obliterate,
    queues.dlq,
    queues.crons,
    queues.webhooks,
    queues.workers,
    queues.stats,
    live.top,
    live.events,
]
for _command in COMMANDS:
    cli.add_command(_command)
