"""How a shard's turn ends and when its replies go out: at the end of the turn, in one frame per front; a
large pull at once, so its reply does not wait for the acks behind it; and a turn ends after `MAX_TURN_S`
with frames still waiting, so that timers and the journal's flush are never held back for long."""

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


def send(front: zmq.Socket[bytes], commands: list[p.Command], first: int = 0) -> None:
    front.send(b"".join(wire.request_item(first + n, c) for n, c in enumerate(commands)))


def one_turn(shard: ShardServer, front: zmq.Socket[bytes]) -> list[list[int]]:
    """Let the shard take one turn of requests and send its replies; the request numbers of each frame of
    replies that came back."""
    assert shard.router.poll(5000)
    shard._drain_requests()
    shard.send_replies()
    frames = []
    while front.poll(200):
        frames.append([int.from_bytes(rid, "little") for rid, _ in wire.split(front.recv())])
    return frames


PULL = p.PullJobs("q", 10)
ACK = p.AckJobs(["nothing-here"])


def test_a_turn_answers_in_one_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shard_server, "LARGE_PULL_S", 60.0)
    with shard_and_front(tmp_path) as (shard, front):
        send(front, [PULL, ACK, PULL, ACK])
        assert one_turn(shard, front) == [[0, 1, 2, 3]]


def test_a_large_pull_is_answered_before_the_commands_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard_server, "LARGE_PULL_S", 0.0)  # every pull counts as large
    with shard_and_front(tmp_path) as (shard, front):
        send(front, [ACK, PULL, ACK, ACK, PULL, ACK])
        assert one_turn(shard, front) == [[0, 1], [2, 3, 4], [5]]


def test_a_turn_ends_after_its_time_with_frames_still_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shard_server, "MAX_TURN_S", 0.0)  # one frame per turn
    with shard_and_front(tmp_path) as (shard, front):
        for n in range(3):
            send(front, [ACK], first=n)
        assert [one_turn(shard, front) for _ in range(3)] == [[[0]], [[1]], [[2]]]
