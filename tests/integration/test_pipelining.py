"""Pipelined requests through `bunq serve`, generated: a front serves some requests from its connection (whole
hot ones) and hands the rest to ASGI (chunked bodies, other routes), on the same connection and in any mix,
so whatever the mix and wherever the bytes are cut between reads, every request is answered once, in
order, and what the replies say was stored is what was stored."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.processes import BunqServer
from tests.support.rawhttp import read_responses

pytestmark = pytest.mark.integration

ENDINGS = {  # what may follow the requests: nothing, or bytes the parser refuses (400 and the close)
    "nothing": b"",
    "garbage": b"GARBAGE\r\n\r\n",
    "bad-chunk": b"POST /queues/broken/jobs HTTP/1.1\r\nHost: bunq\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}
KINDS = ("push", "push-chunked", "push-bad-json", "bulk", "pull", "ack-unknown", "counts", "health")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(Path(tmp_path_factory.mktemp("pipelining")) / "data", shards=2)
    server.start()
    yield server
    server.stop()


@dataclass
class Sent:
    kind: str
    tag: int
    raw: bytes


def request(kind: str, queue: str, tag: int) -> Sent:
    q = queue.encode()

    def post(path: bytes, body: bytes) -> bytes:
        return b"POST %s HTTP/1.1\r\nHost: bunq\r\nContent-Length: %d\r\n\r\n%s" % (path, len(body), body)

    match kind:
        case "push":
            raw = post(b"/queues/%s/jobs" % q, b'{"data": {"tag": %d}}' % tag)
        case "push-chunked":
            body = b'{"data": {"tag": %d}}' % tag
            raw = b"POST /queues/%s/jobs HTTP/1.1\r\nHost: bunq\r\nTransfer-Encoding: chunked\r\n\r\n" % q
            raw += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
        case "push-bad-json":
            raw = post(b"/queues/%s/jobs" % q, b'{"data": {"tag": %d}' % tag)
        case "bulk":
            raw = post(
                b"/queues/%s/jobs/bulk" % q, b'{"jobs": [{"data": {"tag": %d}}, {"data": {"tag": %d}}]}' % (tag, tag)
            )
        case "pull":
            raw = b"GET /queues/%s/jobs HTTP/1.1\r\nHost: bunq\r\n\r\n" % q
        case "ack-unknown":
            raw = post(b"/jobs/%s/ack" % uuid.uuid4().hex.encode(), b"{}")
        case "counts":
            raw = b"GET /queues/%s/counts HTTP/1.1\r\nHost: bunq\r\n\r\n" % q
        case _:
            raw = b"GET /health HTTP/1.1\r\nHost: bunq\r\n\r\n"
    return Sent(kind, tag, raw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8),
    cuts=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), max_size=3),
    ending=st.sampled_from(sorted(ENDINGS)),
)
def test_any_mix_of_pipelined_requests_is_answered_in_order(
    served: BunqServer, kinds: list[str], cuts: list[float], ending: str
) -> None:
    """A generated run of requests, sent on one connection as one stream cut into reads at generated places.
    Each reply is the one its request gets alone: a push's id holds that push's data, a bad body is a 400
    that stored nothing, and the counts and pull see exactly the jobs pushed before them. Bytes the parser
    refuses at the end are answered 400 after all of them, and the connection closes."""
    queue = f"pipe-{uuid.uuid4().hex[:12]}"
    sent = [request(kind, queue, tag) for tag, kind in enumerate(kinds)]
    stream = b"".join(s.raw for s in sent) + ENDINGS[ending]
    places = sorted({int(c * len(stream)) for c in cuts} - {0})
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = 0
        for place in [*places, len(stream)]:
            sock.sendall(stream[start:place])
            start = place
            time.sleep(0.005)  # a read of its own on the server's side
        responses = read_responses(sock, len(sent) + (ending != "nothing"))
        if ending != "nothing":
            head, raw = responses.pop()
            assert head.startswith(b"HTTP/1.1 400 ") and json.loads(raw) == {
                "ok": False,
                "error": "Invalid HTTP request",
            }
            assert sock.recv(1) == b""

    waiting: list[int] = []  # tags of the jobs stored and not pulled, oldest first
    pushed: dict[str, int] = {}  # job id -> tag
    for s, (head, raw) in zip(sent, responses, strict=True):
        status = int(head.split(b" ", 2)[1])
        body = json.loads(raw)
        match s.kind:
            case "push" | "push-chunked":
                assert (status, body["ok"]) == (200, True), (s.kind, body)
                pushed[body["id"]] = s.tag
                waiting.append(s.tag)
            case "bulk":
                assert (status, body["ok"], len(body["ids"])) == (200, True, 2), body
                pushed.update(dict.fromkeys(body["ids"], s.tag))
                waiting += [s.tag, s.tag]
            case "push-bad-json":
                assert (status, body) == (400, {"ok": False, "error": "Invalid JSON body"})
            case "ack-unknown":
                assert (status, body) == (400, {"ok": False, "error": "Job not found or not active"})
            case "pull":
                assert (status, body["ok"]) == (200, True), body
                if waiting:
                    assert body["job"]["data"] == {"tag": waiting.pop(0)}
                else:
                    assert body["job"] is None
            case "counts":
                assert status == 200 and body["counts"]["waiting"] == len(waiting), (body, waiting)
            case _:
                assert status == 200 and body["status"] == "healthy"
    with httpx.Client(base_url=served.url, timeout=10) as api:
        for job_id, tag in pushed.items():
            assert api.get(f"/jobs/{job_id}").json()["job"]["data"] == {"tag": tag}
        counts = api.get(f"/queues/{queue}/counts").json()["counts"]
        assert counts["waiting"] == len(waiting)
        assert counts["active"] == len(pushed) - len(waiting)
