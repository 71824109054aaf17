"""What a connection holds (`bunq.held.HeldJobs`), read from a command's JSON answer, and how a WebSocket
answer gets its `reqId` without being decoded again."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bunq.held import HeldJobs
from bunq.routes.ws import with_member

JOB = {"id": "j1", "queue": "q", "data": {"nested": {"id": "not-this-one"}}, "state": "active"}


def test_a_pull_answer_in_json_holds_its_jobs_with_their_tokens() -> None:
    held = HeldJobs()
    pulled = msgspec.json.encode({"ok": True, "jobs": [JOB, {**JOB, "id": "j2"}], "tokens": ["t1", "t2"]})
    held.track_encoded("PULLB", {}, pulled, holder="ws")
    held.track_encoded("PULL", {}, msgspec.json.encode({"ok": True, "job": {**JOB, "id": "j3"}, "token": "t3"}), "ws")
    held.track_encoded("PULL", {}, b'{"ok":true,"job":null}', "ws")
    held.track_encoded("PULLB", {}, b'{"ok":true,"jobs":[{"id":"j4"}]}', "ws")  # pulled without an owner
    held.track_encoded("PULLB", {}, b'{"ok":false,"error":"count is required"}', "ws")
    assert held.take("ws") == {"j1": "t1", "j2": "t2", "j3": "t3", "j4": None}


def test_finishing_commands_release_what_was_held() -> None:
    held = HeldJobs()
    held.track_encoded("PULLB", {}, b'{"jobs":[{"id":"a"},{"id":"b"},{"id":"c"}],"tokens":["x","y","z"]}')
    held.track_encoded("ACKB", {"ids": ["a"]}, b'{"ok":true,"count":1}')
    held.track_encoded("FAIL", {"id": "b"}, b'{"ok":true}')
    held.track_encoded("GetJob", {"id": "c"}, b'{"ok":true}')
    assert held.take() == {"c": "z"}


def test_what_a_finishing_command_did_not_finish_is_still_held() -> None:
    """A refused ack (or a shard that could not answer) leaves the job active: it goes back at the close."""
    held = HeldJobs()
    pulled = b'{"jobs":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}],"tokens":["w","x","y","z"]}'
    held.track_encoded("PULLB", {}, pulled)
    refused = b'{"ok":false,"error":"Invalid lock token","count":1,"failed":{"b":"Invalid lock token"}}'
    held.track_encoded("ACKB", {"ids": ["a", "b"]}, refused)
    held.track_encoded("ACK", {"id": "c"}, b'{"ok":false,"error":"Shard 0 did not answer in time"}')
    held.track("FAIL", {"id": "d"}, {"ok": False, "error": "Invalid lock token"})
    assert held.take() == {"b": "x", "c": "y", "d": "z"}


def test_past_the_limit_the_oldest_are_forgotten_in_order() -> None:
    held = HeldJobs(limit=3)
    for n in range(10):
        held.hold(f"j{n}", f"t{n}", None)
        if n % 2:
            held.finished("FAIL", {"id": f"j{n - 1}"}, True, {})
    assert held.take() == {"j7": "t7", "j9": "t9"}  # j1, j3 and j5 forgotten as the oldest; the rest done


def test_with_member_appends_to_the_object_as_encoding_it_would() -> None:
    assert (
        with_member(b'{"ok":true,"jobs":[{"id":"a"}]}', b"reqId", "7") == b'{"ok":true,"jobs":[{"id":"a"}],"reqId":"7"}'
    )
    assert with_member(b"{}", b"reqId", 3) == b'{"reqId":3}'
    assert with_member(b'{ "ok": true }\n', b"reqId", None) == b'{ "ok": true,"reqId":null}'
    with pytest.raises(ValueError):
        with_member(b"[1,2]", b"reqId", "x")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "reqId"), json_values, max_size=5), json_values)
def test_with_member_gives_the_object_with_the_member_added(body: dict[str, object], req_id: object) -> None:
    spliced = msgspec.json.decode(with_member(msgspec.json.encode(body), b"reqId", req_id))
    assert spliced == {**body, "reqId": req_id}
