"""One shard engine in the test's hands: built on a fake clock, called synchronously, its events recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bunq import protocol as p
from shards.engine import Engine
from shards.store import Store
from tests.support.clock import FakeClock

JOB = p.NewJob(data=b'{"x":1}')


def make_engine(path: Path, clock: Callable[[], int] | None = None, **kwargs: Any) -> Engine:
    engine = Engine(Store(str(path)), clock=clock or FakeClock(), **kwargs)
    engine.load()
    return engine


def call(engine: Engine, command: p.Command) -> p.Reply:
    """One command's reply, committed first when it waits for a commit (a durable push)."""
    replies: list[p.Reply] = []
    engine.handle(command, replies.append)
    if engine.after_commit:
        engine.flush()
    assert len(replies) == 1, replies
    return replies[0]


def push(engine: Engine, queue: str = "q", **fields: object) -> str:
    reply = call(engine, p.AddJobs(queue, [msgspec.structs.replace(JOB, **fields)]))
    assert isinstance(reply, p.Ids)
    return reply.ids[0]


def pull(engine: Engine, queue: str = "q", count: int = 1, **kw: object) -> list[dict[str, object]]:
    reply = call(engine, p.PullJobs(queue, count, **kw))  # type: ignore[arg-type]
    assert isinstance(reply, p.Jobs)
    return [msgspec.json.decode(j) for j in reply.jobs]


def ack(engine: Engine, job_id: str, result: bytes | None = None) -> p.AckOutcome:
    reply = call(engine, p.AckJobs([job_id], [result]))
    assert isinstance(reply, p.AckOutcome)
    return reply


def counts(engine: Engine, queue: str = "q") -> dict[str, int]:
    """The queue's counts as the HTTP reply shows them."""
    reply = call(engine, p.GetCounts(queue))
    assert isinstance(reply, p.Counts)
    by_state: dict[str, int] = msgspec.to_builtins(reply.counts)
    return by_state


class Recorder:
    """An event sink that wants every event and keeps them in order."""

    dropped = 0

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def wants(self, name: str) -> bool:
        return True

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]
