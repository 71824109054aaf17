"""bunqueue's TCP commands on the front's command table: a request becomes the `{cmd, ...}` message of
`bunq.ws_commands` (so it runs its HTTP route's handler), and the HTTP body it answers is reshaped where
bunqueue's clients read the TCP reply differently. The session commands (`Auth`, `Hello`, `Ping`,
`SubscribeEvents`, `UnsubscribeEvents`) are the connection's own (`bunq.tcp.server`).
"""

from __future__ import annotations

from typing import Any

import bunq
from bunq.held import HeldJobs

PROTOCOL_VERSION = 3
TOKENLESS = ("Progress", "AddLog")
CAPABILITIES = ("pipelining", "separate-job-name")


def hello() -> dict[str, Any]:
    return {
        "ok": True,
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": list(CAPABILITIES),
        "server": "bunq",
        "version": bunq.__version__,
    }


def request(name: str, message: dict[str, Any], held: HeldJobs) -> dict[str, Any]:
    """The message as the command table reads it. A bulk push names custom ids `customId` (the HTTP body's
    `jobId`). bunqueue's Worker reports progress and log lines without the job's lock token: the token this
    process handed out with the job is added, so the lease still fences them (a job pulled through another
    front process goes without one, accepted as over HTTP while the job is active)."""
    if name == "PUSHB" and isinstance(message.get("jobs"), list):
        jobs = [_custom_id(job) for job in message["jobs"]]
        return {**message, "jobs": jobs}
    if name in TOKENLESS and message.get("token") is None and isinstance(message.get("id"), str):
        token = held.token(message["id"])
        if token is not None:
            return {**message, "token": token}
    return message


def _custom_id(job: Any) -> Any:
    if isinstance(job, dict) and "customId" in job:
        job = dict(job)
        custom = job.pop("customId")
        if custom is not None and job.get("jobId") is None:
            job["jobId"] = custom
    return job


# Keys of a job as bunqueue's TCP server renders it that bunq's HTTP view lacks; its `Queue.getJob` reads
# some of them unguarded (`timeline` when there is no `failedReason`).
JOB_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("childrenIds", ()),
    ("childrenCompleted", 0),
    ("parentId", None),
    ("stacktrace", None),
    ("backoffConfig", None),
    ("stackTraceLimit", 10),
    ("keepLogs", None),
    ("sizeLimit", None),
    ("stallTimeout", None),
    ("timeline", ()),
)
JOB_READS = {"GetJob": "job", "GetJobByCustomId": "job", "GetJobs": "jobs"}


def _job_view(job: Any) -> Any:
    if isinstance(job, dict):
        for key, default in JOB_DEFAULTS:
            if key not in job:
                job[key] = list(default) if isinstance(default, tuple) else default
        if "result" in job and "returnvalue" not in job:
            job["returnvalue"] = job["result"]
    return job


def _dlq_entry(entry: Any) -> Any:
    """A DLQ entry (already in the reference's shape, `bunq.routes.queues.reference_entry`) with its job in
    the TCP view."""
    if isinstance(entry, dict):
        return {**entry, "job": _job_view(entry.get("job"))}
    return entry


def reply(name: str, message: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The TCP reply for an HTTP body.

    A batch ack that some ids could not take (the job is gone, or its lease is another's) is, for the HTTP
    API, a 400 naming them; bunqueue's worker would resend the whole batch forever. Over TCP
    the batch is answered as done, with the ACKB's refused positions in `data.ignoredIndices` (the evidence
    the TypeScript worker reads to drop those acks, whose jobs are no longer this worker's to complete).
    """
    failed = body.get("failed")
    if body.get("ok") is False and isinstance(failed, dict) and name == "ACKB":
        ids = message.get("ids") or []
        indices = [i for i, job_id in enumerate(ids) if job_id in failed]
        return {"ok": True, "data": {"ignoredIndices": indices, "ignoredIds": [ids[i] for i in indices]}}
    if name == "GetJobCounts" and isinstance(body.get("counts"), dict):
        body["counts"] = disjoint_counts(body["counts"])
    if name == "GetLogs" and isinstance(body.get("logs"), list):
        return {"ok": True, "data": {"logs": body["logs"], "count": len(body["logs"])}}
    if name == "PUSHF" and isinstance(body.get("data"), dict) and isinstance(body["data"].get("jobs"), list):
        body["data"]["jobs"] = [_job_view(job) for job in body["data"]["jobs"]]
    if name == "Dlq" and isinstance(body.get("entries"), list):
        body["entries"] = [_dlq_entry(entry) for entry in body["entries"]]
    key = JOB_READS.get(name)
    if key is not None:
        value = body.get(key)
        if isinstance(value, list):
            body[key] = [_job_view(job) for job in value]
        else:
            body[key] = _job_view(value)
    return body


def disjoint_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """A queue's counts with every waiting job in one key, as bunqueue's clients read them (BullMQ's states,
    which do not overlap): `waiting` without the `prioritized` jobs, and on a paused queue every waiting
    job under `paused` alone. bunq's HTTP counts keep the spec's `waiting`, every job waiting to run."""
    waiting, prioritized, paused = counts.get("waiting"), counts.get("prioritized"), counts.get("paused")
    if not (isinstance(waiting, int) and isinstance(prioritized, int) and isinstance(paused, int)):
        return counts
    if paused:
        return {**counts, "waiting": 0, "prioritized": 0}
    return {**counts, "waiting": max(0, waiting - prioritized)}
