"""The group commands through `bunq serve`, over WebSocket and TCP: a paused group's jobs stay put while
others run and come back in order, concurrency and rate limits per group, long polls a freed group
serves, bunqueue's reply shapes and refusals, and the settings across a restart and a reshard."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.processes import BunqServer
from tests.support.tcp import RawTcp

pytestmark = pytest.mark.integration


class Ws:
    """Commands over one WebSocket, answered in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seq = 0

    def send(self, cmd: str, **fields: Any) -> str:
        self.seq += 1
        req_id = f"r{self.seq}"
        self.ws.send(json.dumps({"cmd": cmd, "reqId": req_id, **fields}))
        return req_id

    def reply(self, req_id: str) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(self.ws.recv(timeout=15))
            if frame.get("reqId") == req_id:
                frame.pop("reqId")
                return frame

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self.reply(self.send(cmd, **fields))


@contextmanager
def websocket(server: BunqServer) -> Iterator[Ws]:
    with connect(server.url.replace("http://", "ws://") + "/ws") as ws:
        yield Ws(ws)


def tcp_call(c: RawTcp, cmd: str, **fields: Any) -> dict[str, Any]:
    reply = c.call({"cmd": cmd, **fields})
    reply.pop("reqId", None)
    return reply


def pulled(reply: dict[str, Any]) -> list[Any]:
    assert reply["ok"] is True, reply
    return [job["data"] for job in reply["jobs"]]


def test_a_paused_group_is_not_pulled_while_others_are_and_resumes_in_order(server: BunqServer) -> None:
    q = "groups-ws"
    with websocket(server) as c:
        for data, group in (("a1", "a"), ("b1", "b"), ("a2", "a"), ("plain", None), ("a3", "a")):
            assert c.call("PUSH", queue=q, data=data, **({"groupId": group} if group else {}))["ok"] is True
        assert c.call("PauseGroup", queue=q, groupId="a") == {"ok": True, "data": {"changed": True}}
        assert c.call("PauseGroup", queue=q, groupId="a") == {"ok": True, "data": {"changed": False}}
        assert c.call("IsGroupPaused", queue=q, groupId="a") == {"ok": True, "data": {"paused": True}}
        assert pulled(c.call("PULLB", queue=q, count=10, timeout=0)) == ["b1", "plain"]
        assert c.call("GetGroupJobsCount", queue=q, groupId="a") == {"ok": True, "data": {"count": 3}}
        assert c.call("GetGroupActiveCount", queue=q, groupId="b") == {"ok": True, "data": {"count": 1}}
        assert c.call("GetGroupsJobsCount", queue=q) == {"ok": True, "data": {"count": 3}}
        assert c.call("GetJobCounts", queue=q)["counts"]["waiting"] == 3  # still waiting, as the reference counts
        assert c.call("SetGroupConcurrency", queue=q, groupId="a", concurrency=2) == {"ok": True}
        assert c.call("GetGroupConcurrency", queue=q, groupId="a") == {"ok": True, "data": {"concurrency": 2}}
        assert c.call("ResumeGroup", queue=q, groupId="a") == {"ok": True, "data": {"changed": True}}
        assert c.call("IsGroupPaused", queue=q, groupId="a") == {"ok": True, "data": {"paused": False}}
        assert pulled(c.call("PULLB", queue=q, count=10, timeout=0)) == ["a1", "a2"]
        assert c.call("RemoveGroupConcurrency", queue=q, groupId="a") == {"ok": True, "data": {"removed": 1}}
        assert c.call("RemoveGroupConcurrency", queue=q, groupId="a") == {"ok": True, "data": {"removed": 0}}
        assert c.call("GetGroupConcurrency", queue=q, groupId="a") == {"ok": True, "data": {"concurrency": None}}


def test_resuming_a_group_answers_a_pull_waiting_for_it(server: BunqServer) -> None:
    q = "groups-poll"
    with websocket(server) as worker, websocket(server) as admin:
        admin.call("PauseGroup", queue=q, groupId="a")
        admin.call("PUSH", queue=q, data="a1", groupId="a")
        waiting = worker.send("PULL", queue=q, timeout=10_000)
        time.sleep(0.3)
        assert admin.call("ResumeGroup", queue=q, groupId="a")["data"] == {"changed": True}
        started = time.monotonic()
        job = worker.reply(waiting)["job"]
        assert job["data"] == "a1" and time.monotonic() - started < 2


def test_group_rate_limit_and_hold_over_tcp(server: BunqServer) -> None:
    q = "groups-tcp"
    with RawTcp(server.tcp_port) as c:
        for n in range(4):
            tcp_call(c, "PUSH", queue=q, data=f"a{n}", groupId="a")
        tcp_call(c, "SetGroupConcurrency", queue=q, groupId="a", concurrency=10)
        assert tcp_call(c, "SetGroupRateLimit", queue=q, groupId="a", max=2, duration=800) == {"ok": True}
        limit = {"ok": True, "data": {"limit": {"max": 2, "duration": 800}}}
        assert tcp_call(c, "GetGroupRateLimit", queue=q, groupId="a") == limit
        assert tcp_call(c, "GetGroupRateLimitTtl", queue=q, groupId="a") == {"ok": True, "data": {"ttl": -2}}
        assert pulled(tcp_call(c, "PULLB", queue=q, count=10, timeout=0)) == ["a0", "a1"]
        ttl = tcp_call(c, "GetGroupRateLimitTtl", queue=q, groupId="a")["data"]["ttl"]
        assert 0 < ttl <= 800
        assert tcp_call(c, "GetGroupRateLimitTtl", queue=q, groupId="a", maxJobs=5)["data"] == {"ttl": 0}
        started = time.monotonic()
        assert pulled(tcp_call(c, "PULLB", queue=q, count=10, timeout=5000)) == ["a2", "a3"]  # the next window
        assert 0.3 < time.monotonic() - started < 3
        assert tcp_call(c, "RemoveGroupRateLimit", queue=q, groupId="a") == {"ok": True, "data": {"removed": 1}}
        assert tcp_call(c, "RemoveGroupRateLimit", queue=q, groupId="a") == {"ok": True, "data": {"removed": 0}}
        assert tcp_call(c, "GetGroupRateLimit", queue=q, groupId="a") == {"ok": True, "data": {"limit": None}}

        tcp_call(c, "PUSH", queue=q, data="b0", groupId="b")
        assert tcp_call(c, "RateLimitGroup", queue=q, groupId="b", duration=600) == {"ok": True}
        assert 0 < tcp_call(c, "GetGroupRateLimitTtl", queue=q, groupId="b")["data"]["ttl"] <= 600
        assert pulled(tcp_call(c, "PULLB", queue=q, count=10, timeout=0)) == []
        started = time.monotonic()
        assert pulled(tcp_call(c, "PULLB", queue=q, count=10, timeout=5000)) == ["b0"]
        assert 0.2 < time.monotonic() - started < 3


def test_bad_group_commands_are_refused_and_change_nothing(server: BunqServer) -> None:
    q = "groups-bad"
    long = "g" * 257
    positive = "must be a positive safe integer"
    a = {"queue": q, "groupId": "a"}
    refusals = [
        ({"cmd": "GetGroupJobsCount", "queue": q}, "groupId is required"),
        ({"cmd": "PauseGroup", "queue": q, "groupId": ""}, "groupId must be a non-empty string"),
        ({"cmd": "PauseGroup", "queue": q, "groupId": 5}, "groupId must be a string"),
        ({"cmd": "PauseGroup", "queue": q, "groupId": long}, "groupId must be at most 256 characters"),
        ({"cmd": "SetGroupRateLimit", **a, "max": 0, "duration": 10}, f"max {positive}"),
        ({"cmd": "SetGroupRateLimit", **a, "max": 2}, f"duration {positive}"),
        ({"cmd": "SetGroupRateLimit", **a, "max": "2", "duration": 9}, f"max {positive}"),
        ({"cmd": "SetGroupConcurrency", **a, "concurrency": 1.5}, f"concurrency {positive}"),
        ({"cmd": "SetGroupConcurrency", **a}, f"concurrency {positive}"),
        ({"cmd": "RateLimitGroup", **a, "duration": -1}, f"duration {positive}"),
        ({"cmd": "IsGroupPaused", "queue": "bad queue!", "groupId": "a"}, "Queue name contains invalid characters"),
    ]
    with RawTcp(server.tcp_port) as c, websocket(server) as w:
        for message, error in refusals:
            assert tcp_call(c, **message) == {"ok": False, "error": error}, message
            assert w.call(**message) == {"ok": False, "error": error}, message
        assert tcp_call(c, "IsGroupPaused", queue=q, groupId="a")["data"] == {"paused": False}
        assert tcp_call(c, "GetGroupRateLimit", queue=q, groupId="a")["data"] == {"limit": None}
        assert tcp_call(c, "GetGroupConcurrency", queue=q, groupId="a")["data"] == {"concurrency": None}
        assert tcp_call(c, "GetGroupRateLimitTtl", queue=q, groupId="a")["data"] == {"ttl": -2}


def test_group_settings_survive_a_restart_and_a_reshard(server: BunqServer) -> None:
    q = "groups-kept"
    with RawTcp(server.tcp_port) as c:
        tcp_call(c, "PUSH", queue=q, data="a1", groupId="a")
        tcp_call(c, "PUSH", queue=q, data="b1", groupId="b")
        tcp_call(c, "PauseGroup", queue=q, groupId="a")
        tcp_call(c, "SetGroupConcurrency", queue=q, groupId="b", concurrency=3)
        tcp_call(c, "SetGroupRateLimit", queue=q, groupId="b", max=7, duration=60_000)
    for shards in ("2", "3"):  # the same data dir, then resharded onto another shard count
        assert server.stop() == 0
        server.start(BUNQ_SHARDS=shards)
        with websocket(server) as w:
            assert w.call("IsGroupPaused", queue=q, groupId="a")["data"] == {"paused": True}, shards
            assert w.call("GetGroupConcurrency", queue=q, groupId="b")["data"] == {"concurrency": 3}
            limit = {"limit": {"max": 7, "duration": 60_000}}
            assert w.call("GetGroupRateLimit", queue=q, groupId="b")["data"] == limit
            assert w.call("GetGroupJobsCount", queue=q, groupId="a")["data"] == {"count": 1}
    with websocket(server) as w:
        assert pulled(w.call("PULLB", queue=q, count=10, timeout=0)) == ["b1"]
        w.call("ResumeGroup", queue=q, groupId="a")
        assert pulled(w.call("PULLB", queue=q, count=10, timeout=0)) == ["a1"]
