"""The worker's WebSocket channel reading its replies: straight into typed fields, and a reply it cannot read
is a refusal of its own command, never the end of the reader."""

from __future__ import annotations

import msgspec

from bunq.sdk.channel import _read_reply, refusal
from bunq.sdk.errors import BadRequest, Unauthorized, Unavailable

JOB = {"id": "j1", "queue": "q", "data": {"n": 1}, "state": "active", "attempts": 0}


def test_a_pull_reply_is_decoded_into_jobs_and_tokens() -> None:
    message = msgspec.json.encode({"ok": True, "jobs": [JOB], "tokens": ["t1"], "reqId": "7", "extra": [1, 2]})
    reply = _read_reply(message)
    assert reply is not None and reply.req_id == "7" and reply.ok
    assert [job.id for job in reply.jobs] == ["j1"] and reply.jobs[0].data == {"n": 1} and reply.tokens == ["t1"]


def test_a_batch_reply_keeps_its_refusals() -> None:
    reply = _read_reply(b'{"ok":false,"error":"Job not found","count":1,"failed":{"b":"Job not found"},"reqId":"3"}')
    assert reply is not None and (reply.ok, reply.count, reply.failed) == (False, 1, {"b": "Job not found"})


def test_a_reply_with_unexpected_types_refuses_its_command() -> None:
    reply = _read_reply(b'{"ok":true,"jobs":"not a list","reqId":"9"}')
    assert reply is not None and reply.req_id == "9" and not reply.ok and "unreadable reply" in (reply.error or "")
    assert _read_reply(b'{"jobs":"not a list"}') is None  # nobody to tell
    assert _read_reply(b"not json") is None
    assert _read_reply(b"[1, 2]") is None


def test_refusals_map_to_the_exceptions_of_their_status() -> None:
    def refused(error: str) -> type:
        reply = _read_reply(msgspec.json.encode({"ok": False, "error": error, "reqId": "1"}))
        assert reply is not None
        return type(refusal(reply))

    assert refused("Unauthorized") is Unauthorized
    assert refused("Shard 1 did not answer in time") is Unavailable
    assert refused("count is required") is BadRequest
