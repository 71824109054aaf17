"""Flow commands (bunqueue's FlowProducer and its job methods), served over WebSocket and TCP only, as the
reference serves them: `PUSHF` (an atomic flow), `UpdateParent`, `RemoveChildDependency`,
`RemoveUnprocessedChildren`, `GetFailedChildrenValues`, `GetIgnoredChildrenFailures`, `MoveToWaitingChildren`.

A flow whose jobs all hash to one shard is one command there: all of it is created, in one journal window
(one commit, answered after it when a job is durable), or none. A flow across shards cannot be made so
without a distributed commit, which bunq does not have. It is made as close as one honestly can: the whole
graph is checked, and every id looked up on every shard, before anything is written; then each shard
writes its part in one command, the jobs that wait for others first (nothing can run them yet) and the
leaves last; when a shard refuses or fails, the parts already written are removed and the push answers the
error. What may remain is a flow half written by a front that died between those writes, or a leaf that a
worker pulled in the moment before its removal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec

from bunq import flowgraph
from bunq import protocol as p
from bunq import validation as v
from bunq.client import Shards
from bunq.errors import BadRequest, BunqError, NotFound
from bunq.http import OK, Call, Result, encode

_json = msgspec.json.Decoder()
_UNFINISHED: set[asyncio.Future[Any]] = set()  # writes that outlive the command that began them

T = TypeVar("T")


async def to_the_end(write: Coroutine[Any, Any, T]) -> T:
    """Run a write of several steps to its end (done, or undone on a refusal) even when its caller is
    cancelled, as a command is when its connection closes: a flow or a push with a parent is never left
    half made, waiting for jobs that will not come."""
    task = asyncio.ensure_future(write)
    _UNFINISHED.add(task)
    task.add_done_callback(_UNFINISHED.discard)
    return await asyncio.shield(task)


async def push_flow(call: Call) -> Result:
    body = v.decode_object(call.body)
    client = call.client
    jobs = flowgraph.parse(body.get("jobs"), client.slots)
    if not jobs:
        return b'{"ok":true,"data":{"jobs":[]}}'
    await _ids_free(client, [item.job.job_id or "" for item in jobs])
    by_shard: dict[int, list[p.FlowJob]] = {}
    for item in jobs:
        by_shard.setdefault(client.shard_for_queue(item.queue), []).append(item)
    if len(by_shard) == 1:
        ((shard, part),) = by_shard.items()
        rendered = dict(zip(_ids(part), (await client.call(shard, p.AddFlow(part), p.Jobs)).jobs, strict=True))
    else:
        rendered = await to_the_end(_across_shards(client, by_shard))
    order = [rendered[entry["id"]] for entry in body["jobs"]]
    return b'{"ok":true,"data":{"jobs":[' + b",".join(order) + b"]}}"


def _ids(jobs: list[p.FlowJob]) -> list[str]:
    return [item.job.job_id or "" for item in jobs]


async def _ids_free(client: Shards, ids: list[str]) -> None:
    for reply in await client.call_all(p.FindJobs(ids)):
        if isinstance(reply, p.Ids) and reply.ids:
            raise BadRequest(f"Flow job {reply.ids[0]} already exists")


async def _across_shards(client: Shards, by_shard: dict[int, list[p.FlowJob]]) -> dict[str, bytes]:
    waiting = {s: [j for j in part if j.job.depends_on] for s, part in by_shard.items()}
    leaves = {s: [j for j in part if not j.job.depends_on] for s, part in by_shard.items()}
    rendered: dict[str, bytes] = {}
    written: list[tuple[int, str]] = []
    try:
        for phase in (waiting, leaves):
            for shard, part in phase.items():
                if not part:
                    continue
                ids = _ids(part)
                written.extend((shard, job_id) for job_id in ids)  # before the call: its outcome may be unknown
                reply = await client.call(shard, p.AddFlow(part), p.Jobs)
                rendered.update(zip(ids, reply.jobs, strict=True))
    except BunqError:
        await asyncio.gather(*(_undo(client, shard, job_id) for shard, job_id in written))
        raise
    return rendered


async def _undo(client: Shards, shard: int, job_id: str) -> None:
    """A job this write made, removed again: a parent it was linked to stops waiting for it (it never was),
    rather than being told it failed."""
    with contextlib.suppress(BunqError):
        await client.call_raw(shard, p.CancelJob(job_id, p.FlowPolicy.REMOVE))  # its parent stops waiting for it


async def _job(client: Shards, job_id: str, missing: str) -> dict[str, Any]:
    """The job's JSON view (from whichever shard holds it); `missing` is the refusal when none does."""
    reply = await client.call_for_id(job_id, p.GetJob(job_id), lambda r: isinstance(r, p.JobDoc))
    if not isinstance(reply, p.JobDoc):
        raise BadRequest(missing)
    job: dict[str, Any] = _json.decode(reply.job)
    return job


async def _link(client: Shards, parent: dict[str, Any], child_id: str) -> None:
    """The parent (its JSON view) waits for `child_id` from now on: UpdateParent's link, and a push's with
    `parentId`. Refused when the parent has started or finished since it was read."""
    await client.call(client.shard_for_queue(parent["queue"]), p.LinkChild(parent["id"], child_id))


LINKABLE = ("waiting", "delayed", "waiting-children")


async def adopting(client: Shards, jobs: list[p.NewJob]) -> tuple[list[p.NewJob], dict[str, dict[str, Any]]]:
    """The jobs of a push, those with a `parentId` checked against their parents as the reference checks a
    push's parent (it exists and has not started; it is in the queue that the data's `__parentQueue` names)
    and told its slot, before anything is pushed; and the parents read. A job whose `jobId` already names a
    job resolves to it and is linked to nothing, as on the reference."""
    wanted = list(dict.fromkeys(j.options.parent_id for j in jobs if j.options is not None and j.options.parent_id))
    found = await asyncio.gather(
        *(_job(client, i, f"Parent job not found: {i}") for i in wanted), return_exceptions=True
    )
    parents = dict(zip(wanted, found, strict=True))
    taken = await _existing_ids(client, [j.job_id for j in jobs if j.job_id and j.options and j.options.parent_id])
    out = []
    for job in jobs:
        opts = job.options
        if opts is None or opts.parent_id is None:
            out.append(job)
            continue
        if opts.parent_id == (job.job_id or job.id):
            raise BadRequest("A job cannot be its own parent")
        parent = parents[opts.parent_id]
        if isinstance(parent, BaseException):
            raise parent
        if job.job_id in taken:
            out.append(msgspec.structs.replace(job, options=msgspec.structs.replace(opts, parent_id=None, policy=None)))
            continue
        _check_parent(parent, job)
        slot = client.slot_for_queue(parent["queue"])
        out.append(msgspec.structs.replace(job, options=msgspec.structs.replace(opts, parent_slot=slot)))
    return out, {k: v for k, v in parents.items() if not isinstance(v, BaseException)}


def _check_parent(parent: dict[str, Any], job: p.NewJob) -> None:
    if parent.get("state") not in LINKABLE:
        raise BadRequest(f"Parent job {parent['id']} is not linkable")
    if b'"__parentQueue"' not in job.data:
        return
    data = _json.decode(job.data)
    expected = data.get("__parentQueue") if isinstance(data, dict) else None
    if isinstance(expected, str) and expected and expected != parent["queue"]:
        raise BadRequest(f"Parent job {parent['id']} belongs to queue {parent['queue']}, not {expected}")


async def _existing_ids(client: Shards, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    return {i for reply in await client.call_all(p.FindJobs(ids)) if isinstance(reply, p.Ids) for i in reply.ids}


async def link_children(
    client: Shards, jobs: list[p.NewJob], ids: list[str], parents: dict[str, dict[str, Any]], queue: str
) -> None:
    """After the push: each job it made with a parent (not one it resolved to, a unique key's holder say)
    becomes a child its parent waits for. If a parent started in the meantime, the push's children are
    removed again and the refusal is the answer."""
    children = [
        (job.options.parent_id, job_id)
        for job, job_id in zip(jobs, ids, strict=True)
        if job.options is not None and job.options.parent_id is not None and job_id == (job.job_id or job.id)
    ]
    try:
        for parent_id, child_id in children:
            await _link(client, parents[parent_id], child_id)
    except BunqError:
        shard = client.shard_for_queue(queue)
        await asyncio.gather(*(_undo(client, shard, child_id) for _, child_id in children))
        raise


async def update_parent(call: Call) -> Result:
    body = v.decode_object(call.body)
    child_id = v.string("childId", body.get("childId"), max_length=v.MAX_ID_LENGTH)
    parent_id = v.string("parentId", body.get("parentId"), max_length=v.MAX_ID_LENGTH)
    if child_id is None or parent_id is None:
        raise BadRequest("childId and parentId are required")
    if child_id == parent_id:
        raise BadRequest("A flow job cannot be its own parent")
    client = call.client
    child = await _job(client, child_id, f"Child job not found: {child_id}")
    parent = await _job(client, parent_id, f"Parent job not found: {parent_id}")
    owner = child.get("parentId")
    if owner is not None and owner != parent_id:
        raise BadRequest(f"Child job {child_id} already belongs to parent {owner}")
    await _refuse_cycle(client, parent, child_id)
    await to_the_end(_adopt(client, parent, child))
    return OK


async def _adopt(client: Shards, parent: dict[str, Any], child: dict[str, Any]) -> None:
    await _link(client, parent, child["id"])
    slot = client.slot_for_queue(parent["queue"])
    await client.call(client.shard_for_queue(child["queue"]), p.SetParent(child["id"], parent["id"], slot))


MAX_ANCESTRY = 64  # parents followed up from a new parent, looking for the child-to-be


async def _refuse_cycle(client: Shards, parent: dict[str, Any], child_id: str) -> None:
    """The child must not be among the new parent's ancestors: each would wait for the other forever."""
    job: dict[str, Any] | None = parent
    for _ in range(MAX_ANCESTRY):
        above = job.get("parentId") if job is not None else None
        if not isinstance(above, str):
            return
        if above == child_id:
            raise BadRequest("flow contains a dependency cycle")
        try:
            job = await _job(client, above, "")
        except BadRequest:
            return
    raise BadRequest(f"flow nests deeper than {MAX_ANCESTRY} parents")


async def remove_child_dependency(call: Call) -> Result:
    child_id = call.params["id"]
    client = call.client
    child = await _job(client, child_id, f"Job not found: {child_id}")
    parent_id = child.get("parentId")
    if parent_id is None:
        raise BadRequest(f"Job {child_id} has no parent")
    removed = await client.call_for_id(parent_id, p.DetachChild(parent_id, child_id), _detached)
    if _detached(removed):
        await client.call(client.shard_for_queue(child["queue"]), p.ClearParent(child_id, parent_id))
        return b'{"ok":true,"removed":true}'
    return b'{"ok":true,"removed":false}'


def _detached(reply: p.Reply) -> bool:
    return isinstance(reply, p.Count) and reply.count > 0


async def remove_unprocessed_children(call: Call) -> Result:
    """Waiting and delayed children go, and the parent stops waiting for them; active and finished ones
    stay. No such parent is no error, as the reference answers."""
    parent_id = call.params["id"]
    client = call.client
    try:
        parent = await _job(client, parent_id, "")
    except BadRequest:
        return OK
    children = [c for c in parent.get("childrenIds") or () if isinstance(c, str)]
    await asyncio.gather(*(client.call_for_id(c, p.RemoveUnprocessed(c, parent_id), _detached) for c in children))
    return OK


async def _failures(call: Call, ignored: bool) -> Result:
    job_id = call.params["id"]
    reply = await call.client.call_for_id(
        job_id, p.GetFlowFailures(job_id, ignored), lambda r: isinstance(r, p.Failures)
    )
    values = reply.values if isinstance(reply, p.Failures) else {}  # no such job: none, as the reference answers
    return encode({"ok": True, "values": values})


async def get_failed_children_values(call: Call) -> Result:
    return await _failures(call, False)


async def get_ignored_children_failures(call: Call) -> Result:
    return await _failures(call, True)


async def move_to_waiting_children(call: Call) -> Result:
    body = v.decode_object(call.body)
    token = v.string("token", body.get("token"), max_length=v.MAX_ID_LENGTH)
    job_id = call.params["id"]
    command = p.MoveToWaitingChildren(job_id, token)
    reply = await call.client.call_for_id(job_id, command, lambda r: not isinstance(r, p.Error))
    if isinstance(reply, p.Error):
        raise BadRequest(reply.message if reply.code != NotFound.code else "Job is not active")
    return b'{"ok":true,"data":{"moved":true}}'


WS_ONLY = (
    push_flow, update_parent, remove_child_dependency, remove_unprocessed_children, get_failed_children_values,
    get_ignored_children_failures, move_to_waiting_children,
)  # fmt: skip
