"""The real-time surface's replies and frames as the reference gives them, through one `bunq serve`:
WebSocket Subscribe/Unsubscribe replies and refusals, malformed frames, the SSE headers, webhook
registration refusals, and what a webhook delivery carries (headers, payload, the fired/failed events)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.processes import BunqServer, wait_until
from tests.support.webhooks import SECRET, Receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    data: Path = tmp_path_factory.mktemp("replies") / "data"
    srv = BunqServer(data, shards=2, BUNQ_WEBHOOK_ALLOW="127.0.0.1/32")
    try:
        yield srv.start()
    finally:
        srv.stop()


def _call(ws: ClientConnection, message: dict[str, Any] | str, req_id: str | None = "r") -> dict[str, Any]:
    """Send one frame; the next frame that is not an event is its reply."""
    if isinstance(message, dict):
        ws.send(json.dumps(message | ({} if req_id is None else {"reqId": req_id})))
    else:
        ws.send(message)
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if "event" not in frame and "eventType" not in frame:
            return frame


def test_subscribe_answers_the_connection_s_whole_subscription(server: BunqServer) -> None:
    """As the reference: `subscribed` is everything the connection now receives, in the order it was
    first asked for, each pattern once; Unsubscribe answers what is left."""
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        assert _call(ws, {"cmd": "Subscribe", "events": ["queue:counts"]})["subscribed"] == ["queue:counts"]
        assert _call(ws, {"cmd": "Subscribe", "events": ["job:active", "queue:counts"]})["subscribed"] == [
            "queue:counts",
            "job:active",
        ]
        reply = _call(ws, {"cmd": "Subscribe", "events": ["cron:*", "cron:*"]})
        assert reply == {"ok": True, "subscribed": ["queue:counts", "job:active", "cron:*"], "reqId": "r"}
        assert _call(ws, {"cmd": "Unsubscribe", "events": ["job:active"]})["subscribed"] == ["queue:counts", "cron:*"]


def test_subscription_refusals_are_the_reference_s_and_change_nothing(server: BunqServer) -> None:
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        assert _call(ws, {"cmd": "Subscribe", "events": ["job:completed"]})["ok"] is True
        for events, error in (
            (["job:failed", "nope:x"], "Invalid: nope:x"),
            (["job:nonexistent"], "Invalid: job:nonexistent"),
            (["JOB:*"], "Invalid: JOB:*"),
            ([1], "Invalid: 1"),
            ("job:*", "events must be a non-empty array"),
            ([], "events must be a non-empty array"),
            (None, "events must be a non-empty array"),
        ):
            message = {"cmd": "Subscribe"} | ({} if events is None else {"events": events})
            assert _call(ws, message) == {"ok": False, "error": error, "reqId": "r"}, events
        # unsubscribing from what the connection does not have (or what no event is called) is a no-op
        reply = _call(ws, {"cmd": "Unsubscribe", "events": ["job:failed", "nope:x"]})
        assert reply["ok"] is True and reply["subscribed"] == ["job:completed"]
        with httpx.Client(base_url=server.url, timeout=10) as c:
            bad = c.post("/queues/refusals/jobs", json={"data": 1, "maxAttempts": 1}).json()["id"]
            c.get("/queues/refusals/jobs")
            assert c.post(f"/jobs/{bad}/fail", json={"error": "x"}).json()["ok"]
            job = c.post("/queues/refusals/jobs", json={"data": 2}).json()["id"]
            c.get("/queues/refusals/jobs")
            assert c.post(f"/jobs/{job}/ack", json={}).json()["ok"]
        frame = json.loads(ws.recv(timeout=10))  # the refused Subscribe of job:failed added nothing
        assert (frame["event"], frame["data"]["jobId"]) == ("job:completed", job)


@contextlib.contextmanager
def _subscribed(server: BunqServer, events: list[str]) -> Iterator[ClientConnection]:
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        assert _call(ws, {"cmd": "Subscribe", "events": events})["ok"] is True
        yield ws


def _events(ws: ClientConnection, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        frames.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    return frames


def test_a_delivery_carries_the_reference_s_headers_and_payload(server: BunqServer) -> None:
    """bunqueue's receivers read `X-Webhook-Event`, `X-Webhook-Timestamp` (the payload's ms) and
    `X-Webhook-Signature` (hex HMAC-SHA256 of the body); a progress delivery carries its progress."""
    receiver = Receiver()
    try:
        with _subscribed(server, ["webhook:fired"]) as ws, httpx.Client(base_url=server.url, timeout=30) as c:
            events = ["job.progress", "job.completed"]
            body = {"url": receiver.url, "events": events, "queue": "hdr", "secret": SECRET}
            hook = c.post("/webhooks", json=body).json()["data"]["webhookId"]
            job = c.post("/queues/hdr/jobs", json={"data": 1}).json()["id"]
            c.get("/queues/hdr/jobs")
            c.post(f"/jobs/{job}/progress", json={"progress": 40, "message": "m"})
            wait_until(lambda: len(receiver.deliveries) == 1, timeout=15)
            c.post(f"/jobs/{job}/ack", json={"result": {"r": 1}})
            wait_until(lambda: len(receiver.deliveries) == 2, timeout=15)
            fired = [f["data"] for f in _events(ws, 2)]
            c.delete(f"/webhooks/{hook}")
    finally:
        receiver.close()
    for headers, raw, _ in receiver.deliveries:
        payload = json.loads(raw)
        assert headers["x-webhook-event"] == payload["event"]
        assert headers["x-webhook-timestamp"] == str(payload["timestamp"])
        assert headers["x-webhook-signature"] == hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    progress, completed = (json.loads(raw) for _, raw, _ in receiver.deliveries)
    assert progress | {"event": "job.progress", "jobId": job, "queue": "hdr", "progress": 40} == progress
    assert completed | {"event": "job.completed", "jobId": job, "data": {"r": 1}} == completed
    # the spec's fields (id, event, statusCode) and the reference's (webhookId, url)
    assert {(f["id"], f["webhookId"], f["url"], f["event"], f["statusCode"]) for f in fired} == {
        (hook, hook, receiver.url, "job.progress", 200),
        (hook, hook, receiver.url, "job.completed", 200),
    }


def test_a_failed_delivery_names_the_webhook_as_spec_and_reference_do(server: BunqServer) -> None:
    receiver = Receiver(fail_first=4)  # the first attempt and its 3 retries
    try:
        with _subscribed(server, ["webhook:failed"]) as ws, httpx.Client(base_url=server.url, timeout=30) as c:
            body = {"url": receiver.url, "events": ["job.pushed"], "queue": "hdr-failed"}
            hook = c.post("/webhooks", json=body).json()["data"]["webhookId"]
            c.post("/queues/hdr-failed/jobs", json={"data": 1})
            (frame,) = _events(ws, 1, timeout=20)  # after 1 + 2 + 4 s of retries
            c.delete(f"/webhooks/{hook}")
    finally:
        receiver.close()
    assert len(receiver.deliveries) == 4
    assert frame["event"] == "webhook:failed"
    assert frame["data"] == {
        "id": hook,
        "webhookId": hook,
        "url": receiver.url,
        "event": "job.pushed",
        "error": "HTTP 500",
    }


def test_frames_that_are_no_command_answer_as_the_reference_and_keep_the_connection(server: BunqServer) -> None:
    """ws-commands.md: unparseable text is "Invalid JSON" (empty text too); JSON that is no object, so
    names no command, is "Invalid command". The connection stays open for the next command."""
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        for text, error in (
            ("", "Invalid JSON"),
            ("   ", "Invalid JSON"),
            ("null", "Invalid JSON"),
            ("not json", "Invalid JSON"),
            ("[1, 2]", "Invalid command"),
            ('"Ping"', "Invalid command"),
            ("5", "Invalid command"),
            ("{}", "Invalid command"),
        ):
            assert _call(ws, text) == {"ok": False, "error": error}, text
        assert _call(ws, {"cmd": "Ping"})["ok"] is True


def test_sse_answers_the_reference_s_headers_then_connected(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for path in ("/events", "/events/queues/sse%3Ahdr"):
            with c.stream("GET", path, headers={"Origin": "https://dash.example"}) as r:
                assert r.status_code == 200
                assert r.headers["content-type"] == "text/event-stream"  # as the reference: no charset
                assert r.headers["cache-control"] == "no-cache"
                assert r.headers["access-control-allow-origin"] == "*"
                lines = r.iter_lines()  # kept: a dropped iterator closes the stream
                first = next(lines)
                assert first.startswith("data: ") and json.loads(first[6:])["connected"] is True
                wait_until(lambda: c.get("/health").json()["connections"]["sse"] == 1, timeout=10)
        wait_until(lambda: c.get("/health").json()["connections"]["sse"] == 0, timeout=10)


@pytest.mark.parametrize("stop", ["disable", "delete"])
def test_a_webhook_disabled_or_removed_gets_no_more_retries(server: BunqServer, stop: str) -> None:
    """The spec: disabled webhooks stop receiving deliveries; a delivery still being retried stops too."""
    receiver = Receiver(fail_first=100)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            body = {"url": receiver.url, "events": ["job.pushed"], "queue": f"stop-{stop}"}
            hook = c.post("/webhooks", json=body).json()["data"]["webhookId"]
            c.post(f"/queues/stop-{stop}/jobs", json={"data": 1})
            wait_until(lambda: len(receiver.deliveries) == 1, timeout=10)
            if stop == "disable":
                assert c.put(f"/webhooks/{hook}/enabled", json={"enabled": False}).json()["ok"]
            else:
                assert c.delete(f"/webhooks/{hook}").json()["ok"]
            time.sleep(3.5)  # past the retries after 1 s and 2 s
            assert len(receiver.deliveries) == 1
            if stop == "disable":
                c.delete(f"/webhooks/{hook}")
    finally:
        receiver.close()


class EndlessReceiver:
    """A receiver that answers 200 and then never ends its body (`body`), or never ends its head."""

    def __init__(self, endless: str) -> None:
        self.endless = endless
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.sent = 0
        self.closing = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while not self.closing.is_set():
                conn, _ = self.sock.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        chunk = b"x" * 65536
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            if self.endless == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.closing.is_set():
                if self.endless == "body":
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.sent += len(chunk)
                else:
                    conn.sendall(b"x")  # one byte of the head at a time, each well within a read timeout
                    time.sleep(0.2)

    def close(self) -> None:
        self.closing.set()
        self.sock.close()


def test_a_delivery_reads_the_status_and_not_an_endless_body(server: BunqServer) -> None:
    """A receiver that streams a body forever: the delivery counts as fired on its status, and the
    aggregator reads (and holds) none of the body; before, it grew by the receiver's whole stream."""
    receiver = EndlessReceiver("body")
    try:
        with _subscribed(server, ["webhook:*"]) as ws, httpx.Client(base_url=server.url, timeout=30) as c:
            body = {"url": receiver.url, "events": ["job.pushed"], "queue": "endless"}
            hook = c.post("/webhooks", json=body).json()["data"]["webhookId"]
            c.post("/queues/endless/jobs", json={"data": 1})
            frames = [f for f in _events(ws, 2, timeout=5) if f["event"] != "webhook:added"]
            c.delete(f"/webhooks/{hook}")
    finally:
        receiver.close()
    assert frames[0]["event"] == "webhook:fired" and frames[0]["data"]["statusCode"] == 200
    assert receiver.sent < 64 * 1024 * 1024  # what the sockets' buffers took before the connection closed


def test_an_attempt_that_never_ends_its_head_fails_after_the_timeout(tmp_path: Path) -> None:
    """`BUNQ_WEBHOOK_TIMEOUT_MS` bounds a whole attempt, not each read: a head dribbled a byte at a time
    held the delivery (and its memory) for as long as the receiver liked."""
    srv = BunqServer(tmp_path / "data", shards=1, BUNQ_WEBHOOK_ALLOW="127.0.0.1/32", BUNQ_WEBHOOK_TIMEOUT_MS="500")
    receiver = EndlessReceiver("head")
    try:
        srv.start()
        with _subscribed(srv, ["webhook:failed"]) as ws, httpx.Client(base_url=srv.url, timeout=30) as c:
            body = {"url": receiver.url, "events": ["job.pushed"], "queue": "dribble"}
            hook = c.post("/webhooks", json=body).json()["data"]["webhookId"]
            started = time.monotonic()
            c.post("/queues/dribble/jobs", json={"data": 1})
            (frame,) = _events(ws, 1, timeout=20)
            took = time.monotonic() - started
            c.delete(f"/webhooks/{hook}")
    finally:
        receiver.close()
        srv.stop()
    assert frame["data"]["id"] == hook and "timed out" in frame["data"]["error"], frame
    assert took < 1 + 2 + 4 + 4 * 0.5 + 3, took  # the retries' waits and four timed-out attempts


def test_a_graceful_stop_tells_subscribers_server_shutdown(tmp_path: Path) -> None:
    """The spec's `server:shutdown {reason}` on a graceful stop reaches the clients: the aggregator
    announces it before the fronts close their connections (it is stopped last, after them)."""
    srv = BunqServer(tmp_path / "data", shards=1)
    srv.start()
    try:
        with connect(f"ws://127.0.0.1:{srv.port}/ws") as ws:
            assert _call(ws, {"cmd": "Subscribe", "events": ["server:*"]})["ok"] is True
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            frames = []
            with contextlib.suppress(Exception):  # until the front closes the connection
                while True:
                    frames.append(json.loads(ws.recv(timeout=10)))
            stopper.join(30)
    finally:
        srv.stop()
    # a server:started may come first: the aggregator sends it shortly after its start, which can be after
    # the Subscribe of a test this quick
    shutdowns = [f for f in frames if f["event"] == "server:shutdown"]
    assert [f["event"] for f in frames if f["event"] != "server:started"] == ["server:shutdown"], frames
    assert shutdowns[0]["data"] == {"reason": "signal"}


def test_an_unsubscribe_from_a_client_that_never_subscribed_keeps_its_legacy_events(server: BunqServer) -> None:
    """As the reference: a legacy client (no Subscribe yet) has nothing to unsubscribe from; it goes on
    receiving the job events in the legacy format."""
    with connect(f"ws://127.0.0.1:{server.port}/ws/queues/still-legacy") as ws:
        assert _call(ws, {"cmd": "Unsubscribe", "events": []})["subscribed"] == []
        with httpx.Client(base_url=server.url, timeout=10) as c:
            job = c.post("/queues/still-legacy/jobs", json={"data": 1}).json()["id"]
        frame = json.loads(ws.recv(timeout=10))
        assert (frame["eventType"], frame["jobId"]) == ("pushed", job)


def _rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_stalled_subscriber_holds_a_bounded_number_of_bytes_not_just_of_events(server: BunqServer) -> None:
    """An SSE client that never reads, while completions carry 512 KB results: the front held every one
    for it (10,000 events' worth, over 10 GB); it is cut off once its backlog passes its byte budget,
    while a client that reads keeps receiving everything."""
    front = server.children()["front"]
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /events/queues/big-results HTTP/1.1\r\nHost: x\r\n\r\n")
    result = "x" * (512 * 1024)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c, c.stream("GET", "/events/queues/big-results") as r:
            lines = r.iter_lines()
            assert json.loads(next(lines)[6:])["connected"] is True
            wait_until(lambda: c.get("/health").json()["connections"]["sse"] == 2, timeout=10)
            before = _rss_mb(front)
            completed = 0
            for _ in range(300):
                job = c.post("/queues/big-results/jobs", json={"data": 1}).json()["id"]
                c.get("/queues/big-results/jobs")
                c.post(f"/jobs/{job}/ack", json={"result": result})
                for line in lines:  # the reader keeps up: up to this job's completion
                    if line.startswith("data: ") and json.loads(line[6:])["eventType"] == "completed":
                        completed += 1
                        break
            grown = _rss_mb(front) - before
            c.post("/queues/big-results/obliterate")
    finally:
        stalled.close()
    assert completed == 300
    # 651 MB before the byte budget; 8-9 MB in runs of this module alone, 159 MB once in a full CI run (what
    # the allocator keeps of freed 512 KB blocks varies), so the bound sits between them
    assert grown < 300, f"the front grew by {grown:.0f} MB for a client that never read"


def test_deliveries_to_a_receiver_that_never_answers_hold_a_bounded_number_of_bytes(server: BunqServer) -> None:
    """A receiver that accepts and never answers keeps each delivery in flight for its four attempts:
    with 512 KB results the aggregator held every body (10,000 of them allowed); past its byte budget a
    delivery is refused at once as `webhook:failed` "delivery backlog full"."""
    hanging = socket.create_server(("127.0.0.1", 0), backlog=1024)
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        with contextlib.suppress(OSError):
            while not closing.is_set():
                held.append(hanging.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    aggregator = server.children()["aggregator"]
    url = f"http://127.0.0.1:{hanging.getsockname()[1]}/hook"
    result = "x" * (512 * 1024)
    try:
        with _subscribed(server, ["webhook:failed"]) as ws, httpx.Client(base_url=server.url, timeout=30) as c:
            hook = c.post("/webhooks", json={"url": url, "events": ["job.completed"], "queue": "hanging"}).json()
            before = _rss_mb(aggregator)
            for _ in range(300):
                job = c.post("/queues/hanging/jobs", json={"data": 1}).json()["id"]
                c.get("/queues/hanging/jobs")
                c.post(f"/jobs/{job}/ack", json={"result": result})
            refused = _events(ws, 1, timeout=10)[0]["data"]
            grown = _rss_mb(aggregator) - before
            c.delete(f"/webhooks/{hook['data']['webhookId']}")
            c.post("/queues/hanging/obliterate")
    finally:
        closing.set()
        hanging.close()
        for conn in held:
            conn.close()
    assert refused["error"] == "delivery backlog full"
    assert grown < 200, f"the aggregator grew by {grown:.0f} MB for deliveries nobody answered"
