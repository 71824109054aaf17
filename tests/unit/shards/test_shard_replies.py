"""When a shard sends its replies: at the end of the turn of its loop, in one frame per front, or sooner once
the turn has worked `REPLY_WITHIN_S`, so a pull's reply does not wait for the ack queued behind it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from bunq import protocol as p
from bunq import wire
from bunq.settings import Settings
from shards import server as shard_server
from shards.server import ShardServer


@contextlib.contextmanager
def shard_and_front(tmp_path: Path) -> Iterator[tuple[ShardServer, zmq.Socket[bytes]]]:
    settings = Settings.from_env(
        {"BUNQ_DATA_DIR": str(tmp_path / "data"), "BUNQ_RUN_DIR": str(tmp_path / "run"), "BUNQ_SHARDS": "1"}
    )
    shard = ShardServer(settings, 0)
    shard.engine.load()
    front = zmq.Context.instance().socket(zmq.DEALER)
    front.connect(settings.shard_endpoints[0])
    try:
        yield shard, front
    finally:
        front.close(linger=0)
        shard._close()


def frames_for(shard: ShardServer, front: zmq.Socket[bytes], commands: list[p.Command]) -> list[list[int]]:
    """Send `commands` in one frame, let the shard handle them in one turn; the request numbers of each frame
    of replies that came back."""
    front.send(b"".join(wire.request_item(n, c) for n, c in enumerate(commands)))
    assert shard.router.poll(5000)
    shard._drain_requests()
    shard.send_replies()
    frames = []
    while front.poll(200):
        frames.append([int.from_bytes(rid, "little") for rid, _ in wire.split(front.recv())])
    return frames


def test_a_short_turn_answers_in_one_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shard_server, "REPLY_WITHIN_S", 60.0)
    with shard_and_front(tmp_path) as (shard, front):
        assert frames_for(shard, front, [p.GetJobState("a"), p.GetJobState("b"), p.GetJobState("c")]) == [[0, 1, 2]]


def test_a_turn_past_its_budget_sends_what_is_ready_before_going_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard_server, "REPLY_WITHIN_S", 0.0)
    with shard_and_front(tmp_path) as (shard, front):
        assert frames_for(shard, front, [p.GetJobState("a"), p.GetJobState("b"), p.GetJobState("c")]) == [
            [0],
            [1],
            [2],
        ]
