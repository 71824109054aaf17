"""Job commands: `push`, `import`, `export`, `job`, `wait`, `cancel`, `retry`."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from typing import IO, Any, cast

import click
import msgspec
from rich.console import Group
from rich.json import JSON
from rich.panel import Panel
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bunq.cli.base import (
    Failure,
    State,
    compact,
    connection_options,
    console,
    done,
    echo_json,
    parse_json_or_text,
    pass_state,
    table,
    to_plain,
    when,
)
from bunq.sdk import BadRequest, Job, PushOptions
from bunq.sdk._base import WIRE_NAMES

EXPORT_STATES = ("waiting", "delayed", "active", "completed", "failed")
PUSH_KEYS = frozenset(WIRE_NAMES) | frozenset(WIRE_NAMES.values())  # a push option, either spelling
# what an exported job carries besides its data and options: its history, dropped on import
JOB_ONLY_KEYS = frozenset(f.encode_name for f in msgspec.structs.fields(Job)) - PUSH_KEYS - {"data"}
EXPORT_PAGE = 1000


@click.command()
@click.argument("queue")
@click.argument("data")
@click.option("--priority", type=int, help="Higher runs first.")
@click.option("--delay", type=int, help="Milliseconds before it may run.")
@click.option("--max-attempts", type=int, help="Tries before the DLQ (default 3).")
@click.option("--backoff", type=int, help="Milliseconds before a retry (doubling).")
@click.option("--ttl", type=int, help="Milliseconds it may wait before it expires.")
@click.option("--timeout", type=int, help="Milliseconds a run may take.")
@click.option("--unique-key", help="At most one job with this key in the queue.")
@click.option("--job-id", help="Your id for it; pushing the same id again returns the existing job.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--group-id", help="Group for per-group ordering.")
@click.option("--depends-on", multiple=True, help="A job id it waits for (repeatable).")
@click.option("--name", help="Job name (default 'default').")
@click.option("--lifo", is_flag=True, help="Run before older waiting jobs.")
@click.option("--remove-on-complete", is_flag=True, help="Forget it once completed.")
@click.option("--remove-on-fail", is_flag=True, help="Forget it once failed for good.")
@click.option("--durable", is_flag=True, help="Reply only once it is on disk.")
@connection_options
@pass_state
def push(state: State, /, queue: str, data: str, **flags: Any) -> None:
    """Push a job onto QUEUE; prints its id. DATA is JSON, or else taken as a string."""
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in flags.items() if v not in (None, False, ())}
    job_id = state.client.push(queue, parse_json_or_text(data), **cast(PushOptions, options))
    done(state, job_id, {"id": job_id})


def import_job(value: Any) -> dict[str, Any]:
    """One line of an import file as a bulk job. An object with a "data" key is a job: its data and push
    options (`maxAttempts` or `max_attempts`); what an export adds (id, state, timestamps, attempts) is
    dropped, and any other key is refused. Any other JSON value is the data of a job with no options."""
    if not (isinstance(value, dict) and "data" in value):
        return {"data": value}
    unknown = sorted(set(value) - PUSH_KEYS - JOB_ONLY_KEYS - {"data"})
    if unknown:
        raise ValueError(f"unknown job field(s): {', '.join(unknown)}")
    return {k: v for k, v in value.items() if k not in JOB_ONLY_KEYS and v is not None}


def read_chunks(source: IO[bytes], size: int, progress: Progress, task: Any) -> Iterator[tuple[list[Any], list[int]]]:
    """The file's jobs in chunks of `size`, each with the line number of every job in it; a line that is not
    valid stops the import before its chunk is pushed."""
    jobs: list[Any] = []
    lines: list[int] = []
    for number, raw in enumerate(source, start=1):
        progress.advance(task, len(raw))
        if not raw.strip():
            continue
        try:
            jobs.append(import_job(json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise Failure(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        except ValueError as exc:
            raise Failure(f"line {number}: {exc}") from None
        lines.append(number)
        if len(jobs) == size:
            yield jobs, lines
            jobs, lines = [], []
    if jobs:
        yield jobs, lines


def _size(source: IO[bytes]) -> int | None:
    try:
        info = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _push_chunk(state: State, queue: str, jobs: list[Any], lines: list[int]) -> int:
    try:
        return len(state.client.push_bulk(queue, jobs))
    except BadRequest as exc:
        match = re.match(r"jobs\[(\d+)\]: (.*)", exc.error)
        where = f"line {lines[int(match[1])]}: {match[2]}" if match and int(match[1]) < len(lines) else exc.error
        raise Failure(f"{where} (HTTP 400)") from None


@click.command("import")
@click.argument("queue")
@click.argument("file", type=click.File("rb"))
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 10_000), help="Jobs per bulk push.")
@connection_options
@pass_state
def import_(state: State, queue: str, file: IO[bytes], chunk: int) -> None:
    """Push every job of a JSON-lines FILE (`-` for standard input) onto QUEUE, a chunk per atomic bulk push.

    A line that is an object with a "data" key is a job with its options (as `bunq export` writes them);
    any other JSON value is a job's data. A bad line stops the import with its line number; the chunks
    before it stay pushed, its own is not."""
    err = console(stderr=True)
    columns: list[ProgressColumn] = [
        TextColumn("importing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[jobs]} jobs"),
    ]
    columns.append(TimeElapsedColumn())
    pushed = 0
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=True) as progress:
        task = progress.add_task("import", total=_size(file), jobs=0)
        try:
            for jobs, lines in read_chunks(file, chunk, progress, task):
                pushed += _push_chunk(state, queue, jobs, lines)
                progress.update(task, jobs=pushed)
        except Failure as exc:
            raise Failure(f"{exc.message}; its chunk was not pushed ({pushed} job(s) before it were)") from None
    done(state, f"imported {pushed} job(s) into {queue}", {"queue": queue, "count": pushed})


@click.command()
@click.argument("queue")
@click.option("--state", "job_state", type=click.Choice(EXPORT_STATES), help="Only jobs in this state.")
@connection_options
@pass_state
def export(state: State, queue: str, job_state: str | None) -> None:
    """Write QUEUE's jobs to stdout as JSON lines (one job object a line; `bunq import` reads them back)."""
    offset = 0
    while True:
        page = state.client.list_jobs(queue, job_state, limit=EXPORT_PAGE, offset=offset)
        for job in page:
            echo_json(job)
        if len(page) < EXPORT_PAGE:
            return
        offset += len(page)


def _job_panel(job: Job, result: Any, logs: list[Any]) -> Panel:
    fields = [
        ("queue", job.queue),
        ("name", job.name),
        ("state", job.state),
        ("priority", job.priority),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", when(job.created_at)),
        ("runs at", when(job.run_at)),
        ("started", when(job.started_at)),
        ("completed", when(job.completed_at)),
        ("progress", f"{job.progress:g}%" + (f" {job.progress_message}" if job.progress_message else "")),
        ("tags", ", ".join(job.tags) or None),
        ("failed reason", job.failed_reason),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in fields:
        grid.add_row(name, "-" if value is None else str(value))
    parts: list[Any] = [grid]
    parts += ["[bold]data[/bold]", JSON(compact(job.data))]
    if job.state == "completed":
        parts += ["[bold]result[/bold]", JSON(compact(result))]
    if logs:
        parts.append(
            table("logs", ("time", "level", "message"), ((when(e.timestamp), e.level, e.message) for e in logs))
        )
    return Panel(Group(*parts), title=f"job {job.id}", title_align="left", expand=False)


@click.command()
@click.argument("job_id")
@connection_options
@pass_state
def job(state: State, job_id: str) -> None:
    """Show a job: its state, options, data, result and logs."""
    client = state.client
    found = client.get_job(job_id)
    result = client.get_result(job_id) if found.state == "completed" else None
    logs = client.get_logs(job_id)
    if state.json:
        echo_json({**to_plain(found), "result": result, "logs": to_plain(logs)})
    else:
        console().print(_job_panel(found, result, logs))


@click.command()
@click.argument("job_id")
@click.option("--timeout", default=30_000, show_default=True, type=click.IntRange(0), help="Milliseconds to wait.")
@connection_options
@pass_state
def wait(state: State, job_id: str, timeout: int) -> None:
    """Wait for a job to complete and print its result; exit 1 if it has not completed in time."""
    outcome = state.client.wait(job_id, timeout)
    if state.json:
        echo_json(outcome)
    elif outcome.completed:
        click.echo(compact(outcome.result))
    if not outcome.completed:
        job_state = state.client.get_state(job_id)
        raise Failure(f"job {job_id} is {job_state}, not completed after {timeout} ms")


@click.command()
@click.argument("job_id")
@connection_options
@pass_state
def cancel(state: State, job_id: str) -> None:
    """Remove a waiting, delayed or active job."""
    state.client.cancel(job_id)
    done(state, f"cancelled {job_id}", {"id": job_id, "cancelled": True})


@click.command()
@click.argument("queue")
@click.argument("job_id", required=False)
@connection_options
@pass_state
def retry(state: State, queue: str, job_id: str | None) -> None:
    """Send QUEUE's DLQ entries (or only JOB_ID) back to waiting, attempts reset."""
    count = state.client.retry_dlq(queue, job_id)
    if job_id is not None and count == 0:
        raise Failure(f"job {job_id} is not in the DLQ of {queue}")
    done(state, f"retried {count} job(s) from the DLQ of {queue}", {"queue": queue, "count": count})
