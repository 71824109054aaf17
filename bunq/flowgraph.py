"""An atomic flow's graph (bunqueue's `PUSHF {jobs}`, as its FlowProducer plans it) checked into the
`FlowJob`s the shards create: every job's push fields, the links between them, and their order.

Each entry is `{id, queue, input}`; `input` holds the push's fields (`name`, `data`, `priority`, `delay`,
`maxAttempts`, ...), the links (`dependsOn`, `childrenIds`, `parentId`) and at most one failure policy. The
links must agree (a child names its parent, the parent lists it among its children and dependencies) and
have no cycle, with the reference's words for each refusal. Nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from bunq import protocol as p
from bunq import pushes
from bunq import validation as v
from bunq.errors import BadRequest
from bunq.protocol import FlowPolicy
from bunq.pushes import POLICIES
from bunq.routing import slot_of

MAX_FLOW_JOBS = 10_000
PUSH_FIELDS = (
    "name", "data", "priority", "delay", "maxAttempts", "ttl", "timeout", "tags", "groupId", "lifo",
    "removeOnComplete", "removeOnFail", "durable",
)  # fmt: skip
UNSUPPORTED = (
    (("repeat",), "repeat is not supported inside an atomic flow"),
    (("uniqueKey", "dedup"), "deduplication is not supported inside an atomic flow"),
    (("debounceId", "debounceTtl"), "debounce is not supported inside an atomic flow"),
)


@dataclass
class Node:
    id: str
    queue: str
    job: p.NewJob
    parent_id: str | None
    children: tuple[str, ...]
    policy: FlowPolicy | None


def parse(jobs: Any, slots: int) -> list[p.FlowJob]:
    """The flow's jobs, dependencies before their dependents; a `BadRequest` for the first refusal."""
    if not isinstance(jobs, list):
        raise BadRequest("flow jobs must be an array")
    if len(jobs) > MAX_FLOW_JOBS:
        raise BadRequest(f"flow exceeds the {MAX_FLOW_JOBS} job limit")
    nodes: dict[str, Node] = {}
    for index, entry in enumerate(jobs):
        node = _node(index, entry, slots)
        if node.id in nodes:
            raise BadRequest(f"duplicate flow job id: {node.id}")
        nodes[node.id] = node
    _check_links(nodes)
    dependents: dict[str, list[tuple[str, int]]] = {}
    for node in nodes.values():
        for dep in node.job.depends_on:
            dependents.setdefault(dep, []).append((node.id, slot_of(node.queue, slots)))
    return [
        p.FlowJob(n.queue, n.job, n.parent_id, n.children, n.policy, tuple(dependents.get(n.id, ())))
        for n in _ordered(nodes)
    ]


def _node(index: int, entry: Any, slots: int) -> Node:
    if not isinstance(entry, dict):
        raise BadRequest(f"flow jobs[{index}] must be an object")
    job_id = entry.get("id")
    if not isinstance(job_id, str):
        raise BadRequest("flow job id must be a string")
    if not job_id or len(job_id) > v.MAX_ID_LENGTH or "/" in job_id:
        raise BadRequest("flow job id is invalid or is not well-formed Unicode")
    if ":" in job_id:
        raise BadRequest("flow job id cannot contain a colon")
    queue = entry.get("queue")
    try:
        v.queue_name(queue if isinstance(queue, str) else "")
    except BadRequest:
        raise BadRequest(f"invalid flow queue: {queue}") from None
    assert isinstance(queue, str)
    spec = entry.get("input")
    if not isinstance(spec, dict):
        raise BadRequest(f"flow job input is invalid: {job_id}")
    if spec.get("customId") is not None and spec["customId"] != job_id:
        raise BadRequest(f"custom id does not match planned id: {job_id}")
    parent_id = spec.get("parentId")
    if parent_id is not None and (not isinstance(parent_id, str) or not parent_id):
        raise BadRequest(f"flow parent id is invalid: {job_id}")
    depends_on = _ids(spec.get("dependsOn"), "dependsOn")
    children = _ids(spec.get("childrenIds"), "childrenIds")
    for keys, message in UNSUPPORTED:
        if any(spec.get(key) is not None for key in keys):
            raise BadRequest(message)
    if not isinstance(spec.get("data"), dict):
        raise BadRequest("flow job data must be an object")
    return Node(job_id, queue, _push(index, job_id, spec, depends_on, slots, queue), parent_id, children, _policy(spec))


def _ids(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or any(not isinstance(i, str) or not i or len(i) > v.MAX_ID_LENGTH for i in value):
        raise BadRequest(f"{name} must be an array of valid string job ids")
    if len(set(value)) != len(value):
        raise BadRequest(f"duplicate entry in flow job {name}")
    return tuple(value)


def _policy(spec: dict[str, Any]) -> FlowPolicy | None:
    chosen = [policy for key, policy in POLICIES.items() if v.flag(key, spec.get(key))]
    if len(chosen) > 1:
        raise BadRequest("flow failure policies are mutually exclusive")
    if chosen and not spec.get("parentId"):
        raise BadRequest("a flow failure policy requires a parent")
    return chosen[0] if chosen else None


def _push(index: int, job_id: str, spec: dict[str, Any], deps: tuple[str, ...], slots: int, queue: str) -> p.NewJob:
    """The push fields, read by the very checks of a push (`bunq.pushes`)."""
    body = {key: spec[key] for key in PUSH_FIELDS if spec.get(key) is not None}
    backoff = spec.get("backoff")
    if isinstance(backoff, dict):  # bunqueue's {type, delay}: bunq's backoff is always exponential
        backoff = backoff.get("delay")
    if backoff is not None:
        body["backoff"] = backoff
    body["jobId"] = job_id
    body["dependsOn"] = list(deps)
    try:
        return pushes.push_body(v.encode_json(body), slot_of(queue, slots))
    except BadRequest as exc:
        raise BadRequest(f"flow jobs[{index}]: {exc.message}") from None


def _check_links(nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        deps = node.job.depends_on
        for dep in deps:
            if dep == node.id:
                raise BadRequest(f"flow job cannot depend on itself: {node.id}")
            if dep not in nodes:
                raise BadRequest(f"flow dependency not found: {dep}")
        for child in node.children:
            if child not in deps:
                raise BadRequest(f"flow child is missing from dependencies: {child}")
            if nodes[child].parent_id != node.id:
                raise BadRequest(f"flow child {child} does not point back to parent {node.id}")
        if node.parent_id is not None:
            parent = nodes.get(node.parent_id)
            if parent is None:
                raise BadRequest(f"flow parent not found: {node.parent_id}")
            if node.id not in parent.children:
                raise BadRequest(f"flow parent {node.parent_id} does not own child {node.id}")


def _ordered(nodes: dict[str, Node]) -> list[Node]:
    """Dependencies before their dependents (Kahn's order), in the request's order where free."""
    left = {n.id: len(n.job.depends_on) for n in nodes.values()}
    waiting_on: dict[str, list[str]] = {}
    for node in nodes.values():
        for dep in node.job.depends_on:
            waiting_on.setdefault(dep, []).append(node.id)
    ready = deque(job_id for job_id, count in left.items() if count == 0)
    order: list[Node] = []
    while ready:
        job_id = ready.popleft()
        order.append(nodes[job_id])
        for dependent in waiting_on.get(job_id, ()):
            left[dependent] -= 1
            if left[dependent] == 0:
                ready.append(dependent)
    if len(order) != len(nodes):
        raise BadRequest("flow contains a dependency cycle")
    return order
