"""bunqueue's TCP frames and the reshaping of replies for its clients (`bunq.tcp.codec`, `bunq.tcp.commands`)."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bunq.events import Event
from bunq.held import HeldJobs
from bunq.routes.queues import reference_entry
from bunq.tcp import codec, commands
from bunq.tcp.server import event_frame

UNDEFINED = b"\xd4\x00\x00"  # msgpackr's `undefined`


def framed(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def packed(message: object) -> bytes:
    return msgspec.msgpack.encode(message)


def test_reader_splits_frames_across_and_within_chunks() -> None:
    stream = framed(packed({"cmd": "Ping", "reqId": "1"})) + framed(packed({"cmd": "Hello"}))
    reader = codec.FrameReader()
    got: list[bytes] = []
    for i in range(len(stream)):  # one byte at a time
        got += reader.feed(stream[i : i + 1])
    assert [codec.decode(f) for f in got] == [{"cmd": "Ping", "reqId": "1"}, {"cmd": "Hello"}]
    assert not reader.partial
    assert reader.feed(stream) == got and not reader.partial  # both in one chunk


def test_reader_holds_a_partial_frame() -> None:
    reader = codec.FrameReader()
    frame = framed(packed({"cmd": "Ping"}))
    assert reader.feed(frame[:-1]) == []
    assert reader.partial
    assert reader.feed(frame[-1:]) == [frame[4:]]
    assert reader.feed(b"\x00\x00") == [] and reader.partial  # half a header is partial too


def test_reader_refuses_an_oversized_length_before_its_body() -> None:
    reader = codec.FrameReader()
    with pytest.raises(codec.FrameTooLarge) as caught:
        reader.feed(struct.pack(">I", codec.MAX_FRAME + 1))
    assert caught.value.size == codec.MAX_FRAME + 1
    assert "exceeds maximum 67108864" in str(caught.value)
    assert not reader.partial
    assert reader.feed(framed(b"\x80")) == [b"\x80"]  # the stream goes on being read
    assert reader.feed(struct.pack(">I", codec.MAX_FRAME)) == [] and reader.partial  # the limit itself is allowed


def test_undefined_decodes_as_absent_and_other_extensions_are_refused() -> None:
    # {"cmd": "PUSH", "delay": undefined, "opts": {"a": undefined, "b": 1}, "list": [undefined]}
    payload = (
        b"\x84"
        + packed("cmd")
        + packed("PUSH")
        + packed("delay")
        + UNDEFINED
        + packed("opts")
        + b"\x82"
        + packed("a")
        + UNDEFINED
        + packed("b")
        + packed(1)
        + packed("list")
        + b"\x91"
        + UNDEFINED
    )
    assert codec.decode(payload) == {"cmd": "PUSH", "opts": {"b": 1}, "list": [None]}
    with pytest.raises(msgspec.DecodeError):
        codec.decode(b"\x81" + packed("x") + b"\xd4\x05\x00")


@pytest.mark.parametrize("payload", [packed([1, 2]), packed("text"), packed({1: "a"}), b"\xc1", b""])
def test_anything_but_a_map_with_string_keys_is_refused(payload: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        codec.decode(payload)


def test_integers_past_32_bits_go_out_as_floats() -> None:
    out = codec.encode({"ok": True, "job": {"createdAt": 1_796_000_000_000, "n": [2**31, 2**31 - 1, -(2**31) - 1]}})
    assert struct.unpack(">I", out[:4])[0] == len(out) - 4
    assert out[4:].count(b"\xcb") == 3  # float64: the timestamp, 2^31 and -2^31-1
    decoded = msgspec.msgpack.decode(out[4:])
    assert decoded == {"ok": True, "job": {"createdAt": 1.796e12, "n": [2.0**31, 2**31 - 1, -(2.0**31) - 1]}}
    assert isinstance(decoded["job"]["n"][1], int) and decoded["job"]["n"][1] == 2**31 - 1
    assert msgspec.msgpack.decode(codec.encode({"flag": True})[4:]) == {"flag": True}  # a bool stays a bool


def test_bulk_push_custom_ids_become_job_ids() -> None:
    message = {"cmd": "PUSHB", "queue": "q", "jobs": [{"data": 1, "customId": "a"}, {"data": 2}, 3]}
    assert commands.request("PUSHB", message, HeldJobs())["jobs"] == [{"data": 1, "jobId": "a"}, {"data": 2}, 3]


def test_progress_and_logs_carry_the_token_this_process_handed_out() -> None:
    held = HeldJobs()
    held.track("PULLB", {}, {"jobs": [{"id": "j1"}, {"id": "j2"}], "tokens": ["t1", "t2"]}, holder="conn")
    assert commands.request("Progress", {"id": "j2", "progress": 5}, held)["token"] == "t2"
    assert commands.request("AddLog", {"id": "j1", "message": "m"}, held)["token"] == "t1"
    assert "token" not in commands.request("AddLog", {"id": "other", "message": "m"}, held)
    assert commands.request("ACK", {"id": "j1"}, held) == {"id": "j1"}  # acks name their own token
    held.track("ACKB", {"ids": ["j1"]}, {"ok": True})
    assert held.take("conn") == {"j2": "t2"}
    assert held.take("conn") == {}


def test_a_partly_refused_batch_ack_names_the_refused_positions() -> None:
    body = {"ok": False, "error": "Job not found", "count": 1, "failed": {"b": "Job not found"}}
    reply = commands.reply("ACKB", {"ids": ["a", "b", "c", "b"]}, body)
    assert reply == {"ok": True, "data": {"ignoredIndices": [1, 3], "ignoredIds": ["b", "b"]}}
    assert "data" not in commands.reply("ACKB", {"ids": ["a"]}, {"ok": True, "count": 1})
    plain_error = {"ok": False, "error": "ids is required"}
    assert commands.reply("ACKB", {}, plain_error) == plain_error


def test_job_reads_get_the_keys_the_typescript_client_reads() -> None:
    reply = commands.reply("GetJob", {}, {"ok": True, "job": {"id": "j", "result": {"r": 1}}})
    assert reply["job"]["timeline"] == [] and reply["job"]["childrenIds"] == []
    assert reply["job"]["returnvalue"] == {"r": 1}
    assert commands.reply("GetJob", {}, {"ok": True, "job": None}) == {"ok": True, "job": None}
    logs = commands.reply("GetLogs", {}, {"ok": True, "logs": [{"message": "m"}]})
    assert logs == {"ok": True, "data": {"logs": [{"message": "m"}], "count": 1}}


def test_dlq_entries_list_their_attempts() -> None:
    entry = {
        "id": "j",
        "attempts": 2,
        "reason": "max_attempts_exceeded",
        "error": "boom",
        "enteredAt": 9,
        "failedAt": 9,
    }
    entry["job"] = {"id": "j", "startedAt": 4}
    shaped = reference_entry(entry)  # as the HTTP route answers it
    [out] = commands.reply("Dlq", {}, {"ok": True, "jobs": [], "entries": [shaped]})["entries"]
    assert out["attempts"] == [
        {"attempt": 2, "startedAt": 4, "failedAt": 9, "reason": "max_attempts_exceeded", "error": "boom", "duration": 5}
    ]
    assert out["job"]["id"] == "j" and out["retryCount"] == 0 and out["error"] == "boom"


def test_event_frames_use_the_typescript_clients_names() -> None:
    completed = Event("job:completed", {"ts": 5, "data": {"jobId": "j", "queue": "q", "result": {"r": 1}}}, b"")
    frame = msgspec.msgpack.decode(event_frame(completed)[4:])
    assert frame == {
        "type": "event",
        "event": {
            "jobId": "j",
            "queue": "q",
            "result": {"r": 1},
            "data": {"r": 1},
            "eventType": "completed",
            "timestamp": 5,
        },
    }
    active = Event("job:active", {"ts": 6, "data": {"jobId": "j", "queue": "q"}}, b"")
    assert msgspec.msgpack.decode(event_frame(active)[4:])["event"]["eventType"] == "pulled"
    paused = Event("queue:paused", {"ts": 7, "data": {"queue": "q"}}, b"")
    assert msgspec.msgpack.decode(event_frame(paused)[4:])["event"]["eventType"] == "paused"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("queue:paused", {"queue": "q"}),
        ("queue:resumed", {"queue": "q"}),
        ("queue:drained", {"queue": "q", "count": 3}),
        ("job:pushed", {"queue": "q", "jobId": "j"}),
    ],
)
def test_every_event_frame_is_one_the_typescript_client_accepts(name: str, data: dict[str, Any]) -> None:
    """The client's check of an event frame (`isJobEvent`): a string `eventType`, `queue` and `jobId` and a
    finite number `timestamp`; a frame that fails it is read as a broken connection, which it reconnects."""
    event = msgspec.msgpack.decode(event_frame(Event(name, {"ts": 8, "data": data}, b""))[4:])["event"]
    assert all(isinstance(event[k], str) for k in ("eventType", "queue", "jobId"))
    assert isinstance(event["timestamp"], int | float)
    assert event["jobId"] == data.get("jobId", "")


def _plain_js_safe(value: Any) -> Any:
    """The rule written plainly, for the fast version to be checked against."""
    if isinstance(value, dict):
        return {k: _plain_js_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_js_safe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value <= 2**31 - 1:
        return float(value)
    return value


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=30,
)  # fmt: skip


@given(_json_values)
def test_js_safe_turns_exactly_the_integers_past_32_bits_into_floats(value: Any) -> None:
    fast, plain = codec.js_safe(value), _plain_js_safe(value)
    assert msgspec.msgpack.encode(fast) == msgspec.msgpack.encode(plain)


def test_counts_over_tcp_put_each_waiting_job_in_one_state() -> None:
    base = {"waiting": 5, "prioritized": 2, "paused": 0, "active": 1, "delayed": 3}
    assert commands.disjoint_counts(base) == {**base, "waiting": 3}
    paused = {**base, "paused": 5}
    assert commands.disjoint_counts(paused) == {**paused, "waiting": 0, "prioritized": 0}
    assert commands.disjoint_counts({"waiting": 1}) == {"waiting": 1}  # not counts as bunq makes them: as they are
    body = {"ok": True, "counts": dict(base)}
    assert commands.reply("GetJobCounts", {}, body)["counts"]["waiting"] == 3
