"""Live commands: `top`, a full-screen view refreshed from the event stream and the server's figures, and
`events`, which tails the event stream."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from bunq.cli.base import (
    State,
    compact,
    connection_options,
    console,
    describe,
    echo_json,
    pass_state,
    table,
    to_plain,
)
from bunq.cli.queues import QueueRow, queue_rows
from bunq.sdk import BunqError, Client, Event, WorkerInfo

RATE_WINDOW_S = 5.0  # completed/s and failed/s per queue: events of the last this many seconds
RATE_EVENTS = ("job:completed", "job:failed")


class Rates:
    """Completions and failures per queue per second, counted from the event stream on a thread of its own.

    A client that falls far behind the stream is dropped by the server (and reconnects), so under a very
    high load these undercount; the totals line's rates come from the server's counters instead."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.error: str | None = None

    def start(self) -> None:
        threading.Thread(target=self.run, name="bunq-top-events", daemon=True).start()

    def run(self) -> None:
        try:
            for event in self.client.events(names=RATE_EVENTS):
                self.add(event.queue or "", event.event, time.monotonic())
        except BunqError as exc:
            self.error = f"event stream: {describe(exc, self.client.url)}"

    def add(self, queue: str, name: str, now: float) -> None:
        with self.lock:
            self.seen[queue, name].append(now)

    def rate(self, queue: str, name: str, now: float) -> float:
        window = min(RATE_WINDOW_S, now - self.started)
        with self.lock:
            times = self.seen.get((queue, name))
            while times and times[0] < now - RATE_WINDOW_S:
                times.popleft()
            count = len(times) if times else 0
        return count / window if window > 0 else 0.0


@dataclass
class Snapshot:
    """What one refresh read from the server."""

    rows: list[QueueRow]
    workers: list[WorkerInfo]
    stats: dict[str, Any]
    taken: float = field(default_factory=time.monotonic)

    @classmethod
    def take(cls, client: Client) -> Snapshot:
        return cls(queue_rows(client), client.workers(), client.stats().get("stats") or {})


@dataclass
class View:
    """The frames of `top`: the latest snapshot, the one before (for the totals' rates) and the event rates."""

    url: str
    rates: Rates
    now: Snapshot
    before: Snapshot | None = None
    error: str | None = None

    def refresh(self, client: Client) -> None:
        try:
            latest = Snapshot.take(client)
        except BunqError as exc:
            self.error = describe(exc, self.url)
            return
        self.before, self.now, self.error = self.now, latest, None

    def total_rate(self, key: str) -> float | None:
        """Per second, from the growth of a server counter between the last two snapshots."""
        if self.before is None or self.now.taken <= self.before.taken:
            return None
        grown = int(self.now.stats.get(key, 0)) - int(self.before.stats.get(key, 0))
        return max(grown, 0) / (self.now.taken - self.before.taken)

    def total_rates(self) -> dict[str, float | None]:
        return {
            "completedPerSecond": self.total_rate("totalCompleted"),
            "failedPerSecond": self.total_rate("totalFailed"),
        }

    def plain(self) -> dict[str, Any]:
        """The frame as JSON-ready values."""
        now = time.monotonic()
        queues = [
            {
                **r.plain(),
                **{name.split(":")[1] + "PerSecond": self.rates.rate(r.name, name, now) for name in RATE_EVENTS},
            }
            for r in self.now.rows
        ]
        totals = {**self.now.stats, **self.total_rates()}
        workers = to_plain(self.now.workers)
        return {"queues": queues, "workers": workers, "totals": totals, "error": self.error or self.rates.error}

    def header(self) -> Text:
        s = self.now.stats
        completed, failed = ("-" if r is None else f"{r:.1f}" for r in self.total_rates().values())
        line = Text(f"bunq top  {self.url}  {datetime.now():%H:%M:%S}  shards up {s.get('shards', '-')}\n", "bold")
        line.append(
            f"waiting {s.get('waiting', 0)}  active {s.get('active', 0)}  delayed {s.get('delayed', 0)}  "
            f"completed {s.get('completed', 0)}  DLQ {s.get('dlq', 0)}  "
            f"completed/s {completed}  failed/s {failed}"
        )
        for problem in (self.error, self.rates.error):
            if problem:
                line.append(f"\n{problem}", "red")
        return line

    def render(self, footer: str) -> RenderableType:
        now = time.monotonic()
        columns = ("queue", "paused", "waiting", "active", "delayed", "completed/s", "failed/s", "DLQ")
        cells = [
            (r.name, "yes" if r.paused else "no", r.counts.waiting, r.counts.active, r.counts.delayed)
            + tuple(f"{self.rates.rate(r.name, name, now):.1f}" for name in RATE_EVENTS)
            + (r.counts.failed,)
            for r in self.now.rows
        ]
        worker_columns = ("worker", "queues", "host", "slots", "active", "processed", "failed")
        worker_cells = (
            (w.name or w.id, ",".join(w.queues), w.hostname, w.concurrency, w.active_jobs, w.processed_jobs)
            + (w.failed_jobs,)
            for w in self.now.workers
        )
        queues = table(f"queues ({len(cells)})", columns, cells, numeric=6)
        workers = table(f"workers ({len(self.now.workers)})", worker_columns, worker_cells, numeric=4)
        return Group(self.header(), queues, workers, Text(footer, "dim"))


@contextlib.contextmanager
def quit_keys(stop: threading.Event) -> Iterator[None]:
    """Set `stop` when `q` is typed: the terminal in cbreak mode (keys arrive at once, unechoed; Ctrl-C still
    works), read on a thread, and put back as it was on the way out. Without a terminal, nothing to read."""
    if not sys.stdin.isatty():
        yield
        return
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def read() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready and os.read(fd, 1) in (b"q", b"Q"):
                stop.set()

    reader = threading.Thread(target=read, name="bunq-top-keys", daemon=True)
    tty.setcbreak(fd)
    try:
        reader.start()
        yield
    finally:
        stop.set()
        reader.join(1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_live(client: Client, view: View, interval: float) -> None:
    stop = threading.Event()
    footer = f"refreshed every {interval:g} s; q quits"
    with quit_keys(stop), Live(view.render(footer), console=console(), screen=True, auto_refresh=False) as live:
        while not stop.wait(interval):
            view.refresh(client)
            live.update(view.render(footer), refresh=True)


@click.command()
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1), help="Seconds a frame.")
@click.option("--once", is_flag=True, help="Print one frame (measured over one interval) and exit.")
@connection_options
@pass_state
def top(state: State, interval: float, once: bool) -> None:
    """A live view of every queue (waiting, active, completed/s, failed/s, DLQ, paused), the workers and the
    totals, refreshed from the event stream and the server's figures. `q` quits."""
    client = state.client
    view = View(state.url, Rates(client), Snapshot.take(client))  # an unreachable server fails here, at once
    view.rates.start()
    with contextlib.suppress(KeyboardInterrupt):
        if state.json:  # a JSON line a frame, for scripts
            while True:
                time.sleep(interval)
                view.refresh(client)
                echo_json(view.plain())
                sys.stdout.flush()
                if once:
                    return
        elif once:
            time.sleep(interval)
            view.refresh(client)
            console().print(view.render(f"measured over {interval:g} s"))
        else:
            run_live(client, view, interval)


def event_line(event: Event) -> str:
    """`ts event queue jobId key=value ...`: the event's time (local), name, queue and job, then its other data."""
    stamp = datetime.fromtimestamp(event.ts / 1000).isoformat(timespec="milliseconds") if event.ts else "-"
    rest = (
        f"{k}={v if isinstance(v, str) and v and not any(c.isspace() for c in v) else compact(v)}"
        for k, v in event.data.items()
        if k not in ("queue", "jobId")
    )
    return " ".join([stamp, event.event, event.queue or "-", event.job_id or "-", *rest])


def _end_tail(signum: int, frame: object) -> None:
    """Ctrl-C ends `events` at once and quietly: what was printed is flushed, and the process exits 0 without
    unwinding. A KeyboardInterrupt raised inside the WebSocket client's receive could leave it unable to
    close (a CI run saw the tail still running 10 s after Ctrl-C); a tail has nothing else to clean up, and
    the server lets go of a connection that drops."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(0)


@click.command()
@click.argument("queue", required=False)
@click.option("--names", multiple=True, help="Event names or wildcards, comma-separated (default every event).")
@click.option("--count", type=click.IntRange(1), help="Stop after this many events.")
@connection_options
@pass_state
def events(state: State, queue: str | None, names: tuple[str, ...], count: int | None) -> None:
    """Tail the event stream (of QUEUE, or of every queue): one line an event, or JSON lines with --json.
    Ctrl-C stops it."""
    wanted = [name.strip() for value in names for name in value.split(",") if name.strip()] or ["*"]
    client = state.client
    client.ping()  # a clear error at once if the server cannot be reached (the stream would keep retrying)
    seen = 0
    signal.signal(signal.SIGINT, _end_tail)
    with contextlib.suppress(KeyboardInterrupt):
        for event in client.events(queue, wanted):
            if state.json:
                echo_json(event)
            else:
                click.echo(event_line(event))
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                return
