"""Handlers for the group commands: a group's counts and limits, pause and resume, rate limits and holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from bunq import protocol as p
from shards.queues import GroupSettings, QueueState

if TYPE_CHECKING:
    from shards.groups import Groups
    from shards.waiters import Respond


class GroupCommands(Protocol):
    """What the group handlers use of the engine."""

    @property
    def queues(self) -> Mapping[str, QueueState]: ...

    @property
    def groups(self) -> Groups: ...

    def clock(self) -> int: ...


def _queue(engine: GroupCommands, name: str) -> QueueState:
    """The queue, or an empty one left unregistered (a read of a queue not in memory creates nothing)."""
    return engine.queues.get(name) or QueueState(name)


def get_group(engine: GroupCommands, cmd: p.GetGroup, respond: Respond) -> p.Reply:
    q = _queue(engine, cmd.queue)
    rules = q.settings.groups.get(cmd.group) or GroupSettings()
    return p.GroupInfo(
        queued=q.group_sizes.get(cmd.group, 0),
        active=q.groups_active.get(cmd.group, 0),
        paused=rules.paused,
        concurrency=rules.concurrency,
        rate_limit=rules.rate_limit,
        rate_limit_ttl=q.group_ttl(cmd.group, engine.clock(), cmd.max_jobs),
    )


def count_grouped_jobs(engine: GroupCommands, cmd: p.CountGroupedJobs, respond: Respond) -> p.Reply:
    return p.Count(sum(_queue(engine, cmd.queue).group_sizes.values()))


def pause_group(engine: GroupCommands, cmd: p.PauseGroup, respond: Respond) -> p.Reply:
    return p.Changed(engine.groups.change(cmd.queue, cmd.group, paused=True))


def resume_group(engine: GroupCommands, cmd: p.ResumeGroup, respond: Respond) -> p.Reply:
    return p.Changed(engine.groups.change(cmd.queue, cmd.group, paused=False))


def set_group_concurrency(engine: GroupCommands, cmd: p.SetGroupConcurrency, respond: Respond) -> p.Reply:
    return p.Changed(engine.groups.change(cmd.queue, cmd.group, concurrency=cmd.concurrency))


def set_group_rate_limit(engine: GroupCommands, cmd: p.SetGroupRateLimit, respond: Respond) -> p.Reply:
    limit = None if cmd.max is None else (cmd.max, cmd.duration)
    return p.Changed(engine.groups.change(cmd.queue, cmd.group, rate_limit=limit))


def rate_limit_group(engine: GroupCommands, cmd: p.RateLimitGroup, respond: Respond) -> p.Reply:
    engine.groups.hold(cmd.queue, cmd.group, cmd.duration)
    return p.Done()
