"""`bunq`, the command line: the server commands (`serve`, `front`, `shard N`, `aggregator`, `prepare`) and the
operator commands (`push`, `queues`, `top`, `events`, ...; `bunq --help` lists them all).

A server command is handed to `bunq.serve` before anything else is imported, so the supervisor and the
processes it starts stay as light as they were; any other command loads the Click application
(`bunq.cli.app`), which talks to a server through the SDK and never imports the server itself.
"""

from __future__ import annotations

import sys

SERVER_COMMANDS = frozenset({"serve", "front", "shard", "aggregator", "prepare"})


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in SERVER_COMMANDS:
        from bunq.serve import main as serve_main

        serve_main(args)
        return
    from bunq.cli.app import cli

    cli.main(args, prog_name="bunq")
