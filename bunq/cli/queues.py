"""Queue and registry commands: `queues`, `pause`, `resume`, `drain`, `clean`, `obliterate`, `dlq`, `crons`,
`webhooks`, `workers`, `stats`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import click

from bunq.cli.base import (
    State,
    compact,
    confirm,
    connection_options,
    done,
    echo_json,
    parse_json_or_text,
    pass_state,
    print_table,
    table,
    to_plain,
    when,
)
from bunq.sdk import Client, Counts

CLEAN_STATES = ("waiting", "delayed", "completed", "failed")
LOOKUPS = 8  # queues looked up at once


@dataclass
class QueueRow:
    """One queue as `queues` and `top` show it. Its failed count is its DLQ: a job that failed for good."""

    name: str
    counts: Counts
    paused: bool

    def plain(self) -> dict[str, Any]:
        return {"queue": self.name, "counts": to_plain(self.counts), "paused": self.paused}


def queue_rows(client: Client) -> list[QueueRow]:
    """Every queue with its counts and paused flag (a few queues at a time)."""

    def row(name: str) -> QueueRow:
        return QueueRow(name, client.counts(name), client.is_paused(name))

    names = client.queues()
    with ThreadPoolExecutor(max_workers=min(LOOKUPS, max(1, len(names)))) as pool:
        return list(pool.map(row, names))


@click.command()
@connection_options
@pass_state
def queues(state: State) -> None:
    """Every queue with its counts and whether it is paused."""
    rows = queue_rows(state.client)
    if state.json:
        echo_json([r.plain() for r in rows])
        return
    columns = ("queue", "paused", "waiting", "delayed", "active", "completed", "failed (DLQ)")
    cells = (
        (r.name, "yes" if r.paused else "no", c.waiting, c.delayed, c.active, c.completed, c.failed)
        for r in rows
        for c in (r.counts,)
    )
    print_table(table(None, columns, cells, numeric=5))


@click.command()
@click.argument("queue")
@connection_options
@pass_state
def pause(state: State, queue: str) -> None:
    """Stop handing out QUEUE's jobs (pushes are still taken)."""
    state.client.pause(queue)
    done(state, f"paused {queue}", {"queue": queue, "paused": True})


@click.command()
@click.argument("queue")
@connection_options
@pass_state
def resume(state: State, queue: str) -> None:
    """Hand out QUEUE's jobs again."""
    state.client.resume(queue)
    done(state, f"resumed {queue}", {"queue": queue, "paused": False})


@click.command()
@click.argument("queue")
@connection_options
@pass_state
def drain(state: State, queue: str) -> None:
    """Remove every waiting and delayed job of QUEUE."""
    count = state.client.drain(queue)
    done(state, f"drained {count} job(s) from {queue}", {"queue": queue, "count": count})


@click.command()
@click.argument("queue")
@click.option("--grace", default=0, show_default=True, type=click.IntRange(0), help="Keep jobs younger (ms).")
@click.option(
    "--state",
    "job_state",
    type=click.Choice(CLEAN_STATES),
    help="Only jobs in this state (default: waiting and delayed).",
)
@click.option("--limit", type=click.IntRange(1), help="Remove at most this many.")
@connection_options
@pass_state
def clean(state: State, queue: str, grace: int, job_state: str | None, limit: int | None) -> None:
    """Remove QUEUE's jobs older than --grace milliseconds."""
    count = state.client.clean(queue, grace, job_state, limit)
    done(state, f"cleaned {count} job(s) from {queue}", {"queue": queue, "count": count})


@click.command()
@click.argument("queue")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@connection_options
@pass_state
def obliterate(state: State, queue: str, yes: bool) -> None:
    """Remove QUEUE and every job in it (asks first, unless --yes)."""
    confirm(f"Obliterate queue {queue!r} and every job in it?", yes)
    state.client.obliterate(queue)
    done(state, f"obliterated {queue}", {"queue": queue, "obliterated": True})


@click.command()
@click.argument("queue")
@click.argument("action", type=click.Choice(("list", "retry", "purge")), default="list")
@click.argument("job_id", required=False)
@click.option("--count", default=100, show_default=True, type=click.IntRange(1, 10_000), help="Entries to list.")
@click.option("--yes", "-y", is_flag=True, help="purge: do not ask first.")
@connection_options
@pass_state
def dlq(state: State, queue: str, action: str, job_id: str | None, count: int, yes: bool) -> None:
    """QUEUE's dead letter queue: list its entries (the default), retry them (all, or JOB_ID), or purge it."""
    client = state.client
    if action == "retry":
        retried = client.retry_dlq(queue, job_id)
        done(state, f"retried {retried} job(s) from the DLQ of {queue}", {"queue": queue, "count": retried})
    elif action == "purge":
        confirm(f"Remove every entry of the DLQ of {queue!r}?", yes)
        purged = client.purge_dlq(queue)
        done(state, f"purged {purged} job(s) from the DLQ of {queue}", {"queue": queue, "count": purged})
    elif state.json:
        echo_json(client.dlq(queue, count))
    else:
        entries = client.dlq(queue, count)
        cells = ((e.id, when(e.entered_at), e.reason, e.error, e.attempts, compact(e.data)) for e in entries)
        print_table(table(f"DLQ of {queue}", ("id", "entered", "reason", "error", "attempts", "data"), cells))


# -- crons ---------------------------------------------------------------------------------------------------


def _list_crons(state: State) -> None:
    crons = state.client.crons()
    if state.json:
        echo_json(crons)
        return
    cells = (
        (c.name, c.queue, c.schedule or f"every {c.repeat_every} ms", c.timezone, when(c.next_run), c.executions)
        for c in crons
    )
    print_table(table(None, ("name", "queue", "schedule", "timezone", "next run", "runs"), cells, numeric=1))


@click.group(invoke_without_command=True)
@connection_options
@click.pass_context
def crons(ctx: click.Context) -> None:
    """Repeating jobs: list them (the default), add one, or remove one."""
    if ctx.invoked_subcommand is None:
        _list_crons(ctx.ensure_object(State))


@crons.command("list")
@connection_options
@pass_state
def crons_list(state: State) -> None:
    """Every cron with its schedule and next run."""
    _list_crons(state)


@crons.command("add")
@click.argument("name")
@click.argument("queue")
@click.argument("data", required=False)
@click.option("--schedule", help="A cron expression ('*/5 * * * *').")
@click.option("--every", "repeat_every", type=click.IntRange(1), help="Or: milliseconds between runs.")
@click.option("--timezone", help="For --schedule (default UTC).")
@click.option("--priority", type=int, help="Priority of each job.")
@click.option("--max-limit", type=click.IntRange(1), help="Stop after this many runs.")
@connection_options
@pass_state
def crons_add(state: State, /, name: str, queue: str, data: str | None, **options: Any) -> None:
    """Add (or replace) cron NAME pushing DATA (JSON, or a string) onto QUEUE."""
    if (options["schedule"] is None) == (options["repeat_every"] is None):
        raise click.UsageError("give one of --schedule and --every")
    cron = state.client.add_cron(name, queue, None if data is None else parse_json_or_text(data), **options)
    done(state, f"added cron {cron.name} (next run {when(cron.next_run)})", to_plain(cron))


@crons.command("rm")
@click.argument("name")
@connection_options
@pass_state
def crons_rm(state: State, name: str) -> None:
    """Remove cron NAME."""
    state.client.delete_cron(name)
    done(state, f"removed cron {name}", {"name": name, "removed": True})


# -- webhooks ------------------------------------------------------------------------------------------------


def _list_webhooks(state: State) -> None:
    hooks = state.client.webhooks()
    if state.json:
        echo_json(hooks)
        return
    cells = (
        (h.id, h.url, ",".join(h.events), h.queue, "yes" if h.enabled else "no", h.success_count, h.failure_count)
        for h in hooks
    )
    print_table(table(None, ("id", "url", "events", "queue", "enabled", "sent", "failed"), cells, numeric=2))


@click.group(invoke_without_command=True)
@connection_options
@click.pass_context
def webhooks(ctx: click.Context) -> None:
    """Webhooks: list them (the default), add one, or remove one."""
    if ctx.invoked_subcommand is None:
        _list_webhooks(ctx.ensure_object(State))


@webhooks.command("list")
@connection_options
@pass_state
def webhooks_list(state: State) -> None:
    """Every webhook with its events and delivery counts."""
    _list_webhooks(state)


@webhooks.command("add")
@click.argument("hook_url", metavar="URL")
@click.option("--event", "events", multiple=True, required=True, help="completed, failed, pushed, started (repeat).")
@click.option("--queue", help="Only this queue's jobs.")
@click.option("--secret", help="Sign each call with this secret.")
@connection_options
@pass_state
def webhooks_add(state: State, hook_url: str, events: tuple[str, ...], queue: str | None, secret: str | None) -> None:
    """Call URL on these job events; prints the webhook's id."""
    hook = state.client.add_webhook(hook_url, list(events), queue=queue, secret=secret)
    done(state, hook.id, to_plain(hook))


@webhooks.command("rm")
@click.argument("webhook_id")
@connection_options
@pass_state
def webhooks_rm(state: State, webhook_id: str) -> None:
    """Remove webhook WEBHOOK_ID."""
    state.client.delete_webhook(webhook_id)
    done(state, f"removed webhook {webhook_id}", {"id": webhook_id, "removed": True})


# -- workers and stats ---------------------------------------------------------------------------------------


@click.command()
@connection_options
@pass_state
def workers(state: State) -> None:
    """The registered workers with their job counts."""
    found = state.client.workers()
    if state.json:
        echo_json(found)
        return
    columns = ("id", "name", "queues", "host", "pid", "last seen", "slots", "active", "processed", "failed")
    cells = (
        (w.id, w.name, ",".join(w.queues), w.hostname, w.pid, when(w.last_seen), w.concurrency, w.active_jobs)
        + (w.processed_jobs, w.failed_jobs)
        for w in found
    )
    print_table(table(None, columns, cells, numeric=4))


@click.command()
@connection_options
@pass_state
def stats(state: State) -> None:
    """The server's totals: jobs per state, throughput counters, memory (MB) and collection sizes."""
    figures = state.client.stats()
    if state.json:
        echo_json(figures)
        return
    for section in ("stats", "memory", "collections"):
        values = figures.get(section) or {}
        print_table(table(section, ("name", "value"), values.items(), numeric=1))
