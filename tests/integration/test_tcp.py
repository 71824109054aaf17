"""bunqueue's TCP protocol against `bunq serve`, with raw frames: framing and its limits, auth, pipelining,
the codec's traps, events, and what a dropped connection gives back."""

from __future__ import annotations

import math
import socket
import struct
import time

import httpx
import msgspec
import pytest

from tests.support.processes import BunqServer, wait_until
from tests.support.tcp import RawTcp, type_markers

pytestmark = pytest.mark.integration


def test_session_commands_and_unknown_ones(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        hello = c.call({"cmd": "Hello", "protocolVersion": 3, "capabilities": ["pipelining"]})
        assert hello["ok"] is True and hello["protocolVersion"] == 3
        assert "pipelining" in hello["capabilities"]
        ping = c.call({"cmd": "Ping"})
        assert ping["ok"] is True and ping["data"]["pong"] is True
        assert c.call({"cmd": "Frobnicate"}) == {"ok": False, "error": "Unknown command: Frobnicate", "reqId": "r3"}
        assert c.call({"queue": "q"})["error"] == "Invalid command"


def test_bad_frames_get_an_error_and_change_nothing(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        for payload in (b"\xc1", msgspec.msgpack.encode([1, 2]), b"\x81\xa1x\xd4\x07\x00", b""):
            c.send_frame(payload)
            assert c.reply() == {"ok": False, "error": "Invalid command format"}
        assert c.call({"cmd": "PUSH", "queue": "q", "data": "x", "delay": -5})["ok"] is False
        assert c.call({"cmd": "PUSH", "queue": "bad queue!", "data": {}})["ok"] is False
        deep = b"\x82\xa3cmd\xa4PUSH\xa4data" + b"\x91" * 100_000 + b"\x01"  # past the recursion limit
        c.send_frame(deep)
        assert c.reply() == {"ok": False, "error": "Invalid command format"}
        for field, value in (("delay", math.inf), ("priority", math.nan), ("data", {"n": [1, -math.inf]})):
            c.send_frame(msgspec.msgpack.encode({"cmd": "PUSH", "queue": "q", "data": 1, field: value}))
            path = "data.n[1]" if field == "data" else field
            assert c.reply() == {"ok": False, "error": f"{path} must be a finite number"}  # not a default, not null
        # with a reqId, the refusal carries it: a pipelining client matches replies by it
        c.send_frame(msgspec.msgpack.encode({"cmd": "PUSH", "queue": "q", "data": 1, "delay": math.nan, "reqId": "r9"}))
        assert c.reply() == {"ok": False, "error": "delay must be a finite number", "reqId": "r9"}
        counts = c.call({"cmd": "GetJobCounts", "queue": "q"})["counts"]
        assert counts["waiting"] == 0 and counts["delayed"] == 0
        assert c.call({"cmd": "Ping"})["ok"] is True  # the connection is still good


def test_an_oversized_frame_is_refused_and_the_connection_closed(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        c.send_bytes(struct.pack(">I", 64 * 1024 * 1024 + 1) + b"\x00" * 1024)
        reply = c.reply()
        assert reply["ok"] is False and "Frame too large: 67108865 bytes" in reply["error"]
        assert c.closed_by_server()


@pytest.mark.bunq(TCP_IDLE_TIMEOUT_MS="400")
def test_a_frame_left_incomplete_closes_the_connection(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as slow, RawTcp(server.tcp_port) as steady:
        frame = msgspec.msgpack.encode({"cmd": "Ping", "reqId": "a-long-enough-request-id"})
        slow.send_bytes(struct.pack(">I", len(frame)) + frame[:2])
        started = time.monotonic()
        for i in range(2, 22):  # a byte of the same frame every 0.1 s buys no time (were it reset: >= 2.4 s)
            time.sleep(0.1)
            steady.call({"cmd": "Ping"})  # complete frames keep a connection open however long it lives
            try:
                slow.send_bytes(frame[i : i + 1])
            except OSError:
                break
        assert slow.closed_by_server()
        assert 0.35 < time.monotonic() - started < 1.8
        assert steady.call({"cmd": "Ping"})["ok"] is True


@pytest.mark.bunq(AUTH_TOKENS="t0k3n,other")
def test_auth_is_required_first_when_tokens_are_set(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        assert c.call({"cmd": "Ping"})["error"] == "Not authenticated"
        assert c.call({"cmd": "PUSH", "queue": "q", "data": {}})["error"] == "Not authenticated"
        assert c.call({"cmd": "SubscribeEvents", "queue": "q"})["error"] == "Not authenticated"
        assert c.call({"cmd": "Auth", "token": "t0k3"})["ok"] is False
        assert c.call({"cmd": "Auth"})["ok"] is False
        assert c.call({"cmd": "Ping"})["error"] == "Not authenticated"
        assert c.call({"cmd": "Auth", "token": "other"}) == {"ok": True, "reqId": "r7"}
        assert c.call({"cmd": "PUSH", "queue": "q", "data": {}})["ok"] is True
    counts = httpx.get(f"{server.url}/queues/q/counts", headers={"Authorization": "Bearer t0k3n"}).json()["counts"]
    assert counts["waiting"] == 1  # only the authenticated push got in


@pytest.mark.bunq(AUTH_TOKENS="t0k3n")
def test_a_connection_that_has_not_authenticated_cannot_make_the_front_buffer_a_large_frame(
    server: BunqServer,
) -> None:
    with RawTcp(server.tcp_port) as stranger:
        stranger.sock.sendall(struct.pack(">I", 60 * 1024 * 1024))  # announces 60 MiB, sends none of it
        assert stranger.reply() == {"ok": False, "error": "Frame too large: 62914560 bytes exceeds maximum 65536"}
        with pytest.raises(ConnectionError):
            stranger.reply()  # and is closed
    with RawTcp(server.tcp_port) as client:
        assert client.call({"cmd": "Auth", "token": "t0k3n"})["ok"] is True
        big = {"cmd": "PUSH", "queue": "big", "data": "x" * 200_000}  # past the stranger's cap: fine now
        assert client.call(big)["ok"] is True


def test_requests_are_pipelined_and_answered_as_they_finish(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        c.send({"cmd": "PULL", "queue": "pipe", "timeout": 1500, "reqId": "slow"})
        c.send({"cmd": "Ping", "reqId": "fast"})
        c.send({"cmd": "PUSH", "queue": "other", "data": {"n": 1}, "reqId": "push"})
        first, second = c.reply(), c.reply()
        assert {first["reqId"], second["reqId"]} == {"fast", "push"}
        c.send({"cmd": "PUSH", "queue": "pipe", "data": {"n": 2}, "reqId": "feed"})
        replies = {r["reqId"]: r for r in (c.reply(), c.reply())}
        assert replies["slow"]["job"]["data"] == {"n": 2}


def test_the_codec_traps_of_a_javascript_peer(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        # {"cmd":"PUSH","queue":"js","data":{"a":1},"delay":undefined,"reqId":"u"}: msgpackr's undefined is absent
        payload = (
            b"\x85"
            + b"".join(msgspec.msgpack.encode(x) for x in ("cmd", "PUSH", "queue", "js", "data", {"a": 1}))
            + msgspec.msgpack.encode("delay")
            + b"\xd4\x00\x00"
            + msgspec.msgpack.encode("reqId")
            + msgspec.msgpack.encode("u")
        )
        c.send_frame(payload)
        pushed = c.reply()
        assert pushed["ok"] is True, pushed
        c.send({"cmd": "GetJob", "id": pushed["id"], "reqId": "g"})
        raw = c.raw_reply()
        job = msgspec.msgpack.decode(raw)["job"]
        assert job["state"] == "waiting"  # not delayed
        assert isinstance(job["createdAt"], float) and job["createdAt"] > 1.7e12  # not a 64-bit integer
        assert not {0xCF, 0xD3} & set(type_markers(raw))  # no uint64/int64 anywhere
        pulled = c.call({"cmd": "PULLB", "queue": "js", "count": 5, "owner": "w", "lockTtl": 5000})
        [token] = pulled["tokens"]
        acked = c.call({"cmd": "ACKB", "ids": [pushed["id"]], "tokens": [token], "results": [{"r": 1}]})
        assert acked == {"ok": True, "count": 1, "reqId": "r2"}  # no `data`, which the client reads as evidence
        stale = c.call({"cmd": "ACKB", "ids": [pushed["id"]], "tokens": [token]})
        assert stale["ok"] is True and stale["data"] == {"ignoredIndices": [0], "ignoredIds": [pushed["id"]]}
        assert c.call({"cmd": "GetResult", "id": pushed["id"]})["result"] == {"r": 1}


def test_bulk_push_custom_ids_and_unrecoverable_failures(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as c:
        ids = c.call({"cmd": "PUSHB", "queue": "b", "jobs": [{"data": {"i": 1}, "customId": "mine"}, {"data": {}}]})
        assert ids["ids"][0] == "mine"
        again = c.call({"cmd": "PUSHB", "queue": "b", "jobs": [{"data": {"i": 9}, "customId": "mine"}]})
        assert again["ids"] == ["mine"]
        job = c.call({"cmd": "PULL", "queue": "b", "owner": "w"})
        assert job["job"]["id"] == "mine" and job["job"]["maxAttempts"] == 3
        failed = c.call({"cmd": "FAIL", "id": "mine", "token": job["token"], "error": "no", "unrecoverable": True})
        assert failed["ok"] is True
        assert c.call({"cmd": "GetState", "id": "mine"})["state"] == "failed"
        dlq = c.call({"cmd": "Dlq", "queue": "b"})
        [entry] = dlq["entries"]
        assert entry["job"]["id"] == "mine" and entry["reason"] == "unrecoverable"
        assert entry["attempts"][0]["error"] == "no"


def test_event_frames_for_a_subscribed_queue(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as events, RawTcp(server.tcp_port) as c:
        assert events.call({"cmd": "SubscribeEvents", "queue": "ev"})["ok"] is True
        assert events.call({"cmd": "SubscribeEvents", "queue": "bad queue!"})["ok"] is False
        job_id = c.call({"cmd": "PUSH", "queue": "ev", "data": {"x": 1}})["id"]
        c.call({"cmd": "PUSH", "queue": "elsewhere", "data": {}})
        pulled = c.call({"cmd": "PULL", "queue": "ev", "owner": "w"})
        c.call({"cmd": "Progress", "id": job_id, "progress": 40, "token": pulled["token"]})
        c.call({"cmd": "ACK", "id": job_id, "token": pulled["token"], "result": {"done": True}})
        seen: dict[str, dict[str, object]] = {}
        while "completed" not in seen:
            frame = events.reply()
            assert frame["type"] == "event"
            event = frame["event"]
            assert event["queue"] == "ev" and event["jobId"] == job_id
            seen[event["eventType"]] = event
        assert {"pushed", "pulled", "progress", "completed"} <= set(seen)
        assert seen["completed"]["data"] == {"done": True}
        assert seen["progress"]["progress"] == 40
        assert isinstance(seen["completed"]["timestamp"], float)
        assert events.call({"cmd": "UnsubscribeEvents"})["ok"] is True
        c.call({"cmd": "PUSH", "queue": "ev", "data": {}})
        assert events.call({"cmd": "Ping"})["ok"] is True  # no event frame came before the answer


def test_a_dropped_connection_gives_back_its_jobs_and_ends_its_workers(server: BunqServer) -> None:
    with RawTcp(server.tcp_port) as keeper:
        ids = keeper.call({"cmd": "PUSHB", "queue": "drop", "jobs": [{"data": {"i": i}} for i in range(3)]})["ids"]
        worker_id = "w-" + ids[0]
        with RawTcp(server.tcp_port) as c:
            c.call({"cmd": "RegisterWorker", "name": "w", "queues": ["drop"], "workerId": worker_id})
            pulled = c.call({"cmd": "PULLB", "queue": "drop", "count": 3, "owner": worker_id, "lockTtl": 60_000})
            assert len(pulled["jobs"]) == 3
            c.call({"cmd": "ACK", "id": ids[0], "token": pulled["tokens"][0]})
            workers = keeper.call({"cmd": "ListWorkers"})
            assert worker_id in str(workers)
        wait_until(lambda: keeper.call({"cmd": "GetJobCounts", "queue": "drop"})["counts"]["waiting"] == 2, 10)
        counts = keeper.call({"cmd": "GetJobCounts", "queue": "drop"})["counts"]
        assert counts["active"] == 0 and counts["completed"] == 1
        wait_until(lambda: worker_id not in str(keeper.call({"cmd": "ListWorkers"})), 10)
        again = keeper.call({"cmd": "PULLB", "queue": "drop", "count": 5})
        assert sorted(j["id"] for j in again["jobs"]) == sorted(ids[1:])
        assert all(j["attempts"] == 0 for j in again["jobs"])  # given back, not charged


def test_a_job_whose_ack_was_refused_is_given_back_at_the_close(server: BunqServer) -> None:
    """Held until finished: an ACKB id refused for its token (or any ACK that did not take) is still this
    connection's, so closing gives it back at once instead of at its lock's expiry a minute later."""
    with RawTcp(server.tcp_port) as keeper:
        ids = keeper.call({"cmd": "PUSHB", "queue": "refused", "jobs": [{"data": {"i": i}} for i in range(3)]})["ids"]
        with RawTcp(server.tcp_port) as c:
            pulled = c.call({"cmd": "PULLB", "queue": "refused", "count": 3, "owner": "w", "lockTtl": 60_000})
            order = [j["id"] for j in pulled["jobs"]]
            assert order == ids
            acked = c.call({"cmd": "ACKB", "ids": ids[:2], "tokens": [pulled["tokens"][0], "not-the-token"]})
            assert acked["ok"] is True and acked["data"]["ignoredIds"] == [ids[1]]  # bunqueue's worker drops those
            refused = c.call({"cmd": "ACK", "id": ids[2], "token": "not-the-token"})
            assert refused["ok"] is False
        wait_until(lambda: keeper.call({"cmd": "GetJobCounts", "queue": "refused"})["counts"]["waiting"] == 2, 10)
        counts = keeper.call({"cmd": "GetJobCounts", "queue": "refused"})["counts"]
        assert counts["active"] == 0 and counts["completed"] == 1


def test_a_command_runs_as_its_http_route(server: BunqServer) -> None:
    """Pushed over TCP, seen over HTTP, and the reverse: one business path."""
    with RawTcp(server.tcp_port) as c:
        job_id = c.call({"cmd": "PUSH", "queue": "both", "data": {"via": "tcp"}, "priority": 7})["id"]
        http_job = httpx.get(f"{server.url}/jobs/{job_id}").json()["job"]
        assert http_job["data"] == {"via": "tcp"} and http_job["priority"] == 7
        pushed = httpx.post(f"{server.url}/queues/both/jobs", json={"data": {"via": "http"}, "priority": 1}).json()
        c.call({"cmd": "Pause", "queue": "both"})
        assert httpx.get(f"{server.url}/queues/both/paused").json()["paused"] is True
        c.call({"cmd": "Resume", "queue": "both"})
        first = c.call({"cmd": "PULL", "queue": "both"})["job"]
        second = c.call({"cmd": "PULL", "queue": "both"})["job"]
        assert [first["id"], second["id"]] == [job_id, pushed["id"]]


def test_health_counts_protocol_clients_as_tcp_connections(server: BunqServer) -> None:
    def tcp_count() -> int:
        count: int = httpx.get(server.url + "/health", timeout=10).json()["connections"]["tcp"]
        return count

    # HTTP connections, this probe's included, are not counted (nor are they by the reference)
    wait_until(lambda: tcp_count() == 0)
    clients = [RawTcp(server.tcp_port) for _ in range(3)]
    try:
        for client in clients:
            assert client.call({"cmd": "Ping"})["ok"] is True
        wait_until(lambda: tcp_count() == 3)
    finally:
        for client in clients:
            client.close()
    wait_until(lambda: tcp_count() == 0)


def test_a_client_that_sends_without_reading_is_read_no_further(server: BunqServer) -> None:
    """The replies of a client that sends and never reads are not buffered without bound: once they pass
    the transport's high-water mark, the server stops reading that client (its sends block). When it reads
    again, every reply comes, and the connection goes on."""
    frame = codec_frame({"cmd": "Ping", "reqId": "p"})
    sock = socket.create_connection(("127.0.0.1", server.tcp_port))
    sock.settimeout(3.0)  # a send that waits this long: the server has stopped reading
    chunk = frame * 1000
    limit = 5_000_000  # frames: without the pause, replies pile up until the 64 MiB cut-off closes the socket
    sent_bytes = 0
    try:
        with pytest.raises(TimeoutError):
            while sent_bytes < limit * len(frame):
                sent_bytes += sock.send(chunk[sent_bytes % len(chunk) :] if sent_bytes % len(chunk) else chunk)
        assert sent_bytes < limit * len(frame)
        rest = (-sent_bytes) % len(frame)  # the frame cut by the timeout, completed once replies are read
        frames = (sent_bytes + rest) // len(frame)
        replies = 0
        pending = b""
        sock.settimeout(10.0)
        while rest:
            pending += sock.recv(1 << 20)  # make room, then finish the cut frame
            rest -= sock.send(frame[len(frame) - rest :])
        while replies < frames:
            pending += sock.recv(1 << 20)
            at = 0
            while len(pending) - at >= 4 and len(pending) - at >= 4 + (
                size := struct.unpack_from(">I", pending, at)[0]
            ):
                reply = msgspec.msgpack.decode(pending[at + 4 : at + 4 + size])
                assert reply["ok"] is True and reply["reqId"] == "p"
                at += 4 + size
                replies += 1
            pending = pending[at:]
        assert replies == frames and not pending
        sock.sendall(codec_frame({"cmd": "Ping", "reqId": "after"}))
        size = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))[0]
        assert msgspec.msgpack.decode(sock.recv(size, socket.MSG_WAITALL))["reqId"] == "after"
    finally:
        sock.close()


def codec_frame(message: dict[str, object]) -> bytes:
    payload = msgspec.msgpack.encode(message)
    return struct.pack(">I", len(payload)) + payload


def test_move_to_wait_retries_a_job_from_any_state_the_reference_allows(server: BunqServer) -> None:
    """bunqueue's `Job.retry()` sends `MoveToWait`: a delayed job is promoted, an active one goes back to
    waiting with its attempts untouched, a failed one leaves the DLQ, a waiting one stays; a completed one
    is refused in the reference's words."""
    with RawTcp(server.tcp_port) as c:

        def push(**options: object) -> str:
            job_id: str = c.call({"cmd": "PUSH", "queue": "mtw", "data": {}, **options})["id"]
            return job_id

        def state(job_id: str) -> str:
            found: str = c.call({"cmd": "GetState", "id": job_id})["state"]
            return found

        delayed = push(delay=600_000)
        assert c.call({"cmd": "MoveToWait", "id": delayed})["ok"] is True and state(delayed) == "waiting"
        assert c.call({"cmd": "MoveToWait", "id": delayed})["ok"] is True  # waiting already: nothing to do
        c.call({"cmd": "Obliterate", "queue": "mtw"})

        active = push()
        pulled = c.call({"cmd": "PULL", "queue": "mtw", "owner": "w"})
        assert pulled["job"]["id"] == active
        stale = c.call({"cmd": "MoveToWait", "id": active, "token": "not-the-lease"})
        assert stale == {"ok": False, "error": "Job not found or not active", "reqId": stale["reqId"]}
        assert state(active) == "active"
        assert c.call({"cmd": "MoveToWait", "id": active, "token": pulled["token"]})["ok"] is True
        again = c.call({"cmd": "PULL", "queue": "mtw"})["job"]
        assert again["id"] == active and again["attempts"] == 0  # not charged, as a released lease

        dead = push(maxAttempts=1)
        assert c.call({"cmd": "PULL", "queue": "mtw"})["job"]["id"] == dead
        c.call({"cmd": "FAIL", "id": dead, "error": "boom"})
        assert state(dead) == "failed"
        assert c.call({"cmd": "MoveToWait", "id": dead})["ok"] is True and state(dead) == "waiting"
        assert c.call({"cmd": "Dlq", "queue": "mtw"})["entries"] == []

        c.call({"cmd": "ACK", "id": active})
        refused = c.call({"cmd": "MoveToWait", "id": active})
        assert refused["ok"] is False and refused["error"] == "Cannot move job from state 'completed' to waiting"


def test_job_counts_over_tcp_keep_bullmq_s_states_apart(server: BunqServer) -> None:
    """bunqueue's clients read `waiting` and `prioritized` as separate states, and a paused queue's jobs as
    `paused` only (the HTTP counts keep the spec's `waiting`: every job waiting to run)."""
    with RawTcp(server.tcp_port) as c:
        for priority in (0, 5, 7):
            c.call({"cmd": "PUSH", "queue": "cnt", "data": {}, "priority": priority})
        counts = c.call({"cmd": "GetJobCounts", "queue": "cnt"})["counts"]
        assert (counts["waiting"], counts["prioritized"], counts["paused"]) == (1, 2, 0)
        c.call({"cmd": "Pause", "queue": "cnt"})
        counts = c.call({"cmd": "GetJobCounts", "queue": "cnt"})["counts"]
        assert (counts["waiting"], counts["prioritized"], counts["paused"]) == (0, 0, 3)
    http = httpx.get(server.url + "/queues/cnt/counts", timeout=10).json()["counts"]
    assert (http["waiting"], http["prioritized"], http["paused"]) == (3, 2, 3)
