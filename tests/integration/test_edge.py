"""The edge through `bunq serve`: auth over every route, CORS, the HTTP rate limit across fronts,
oversize and slow clients, and every monitoring endpoint's shape."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

from bunq.app import create_app
from bunq.routes import docs
from bunq.routes.ui import is_ui_path
from bunq.settings import Settings
from tests.support.processes import BunqServer
from tests.support.rawhttp import read_responses

pytestmark = pytest.mark.integration

PROBES = {"/health", "/healthz", "/live", "/ready"}


def every_route() -> list[tuple[str, str]]:
    """(method, path) of every HTTP route of the app, path parameters filled in."""
    app = create_app(Settings.from_env({"BUNQ_SHARDS": "1"}))
    app.state.client.ctx.term()
    found = []
    for route in app.routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r"\{queue\}", "auth-q", route.path)
        path = re.sub(r"\{[a-z_]+\}", "some-id", path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, path))
    return found


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(tmp_path_factory.mktemp("auth") / "data", shards=1, AUTH_TOKENS="tok-one,tok-two")
    server.start()
    yield server
    server.stop()


def test_every_route_needs_a_valid_bearer_token(secured: BunqServer) -> None:
    routes = every_route()
    assert len(routes) > 60
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Basic dG9rLW9uZQ=="},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer tok-on"},
        {"Authorization": "Bearer tok-one-and-more"},
        {"Authorization": "tok-one"},
    ]
    with httpx.Client(base_url=secured.url, timeout=30) as c:
        for method, path in routes:
            expected_open = path in PROBES or path in docs.PATHS or is_ui_path(path) or path == "/prometheus"
            for headers in bad_headers:
                r = c.request(
                    method, path, headers=headers, params={"token": "tok-one"}, json={} if method != "GET" else None
                )
                if expected_open:
                    assert r.status_code != 401, (method, path)
                else:
                    assert r.status_code == 401, (method, path, headers)
                    assert r.json() == {"ok": False, "error": "Unauthorized"}
            if path.startswith("/events"):
                continue  # a stream: checked below
            r = c.request(
                method, path, headers={"Authorization": "Bearer tok-two"}, json={} if method != "GET" else None
            )
            assert r.status_code != 401, (method, path)
        assert c.options("/queues/x/jobs").status_code == 204
        with c.stream("GET", "/events") as r:
            assert r.status_code == 401
        with c.stream("GET", "/events", headers={"Authorization": "Bearer tok-one"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("switch", ["BUNQ_REQUIRE_AUTH_FOR_METRICS", "METRICS_AUTH"])
def test_metrics_auth_is_optional(tmp_path: Path, switch: str) -> None:
    """bunqueue's own name for the switch (`METRICS_AUTH`) closes /prometheus too: a deployment moved over
    with it must not find its metrics open."""
    server = BunqServer(tmp_path / "data", shards=1, AUTH_TOKENS="t", **{switch: "1"})
    server.start()
    try:
        assert httpx.get(server.url + "/prometheus").status_code == 401
        assert httpx.get(server.url + "/prometheus", headers={"Authorization": "Bearer t"}).status_code == 200
        assert httpx.get(server.url + "/health").status_code == 200
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(tmp_path_factory.mktemp("plain") / "data", shards=2, fronts=2, BUNQ_HEADER_TIMEOUT_MS="1000",
                        BUNQ_BODY_TIMEOUT_MS="1000")  # fmt: skip
    server.start()
    yield server
    server.stop()


def test_cors_default_and_preflight(plain: BunqServer) -> None:
    r = httpx.options(plain.url + "/queues/x/jobs", headers={"Origin": "https://a.example"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-methods"] == "GET, POST, PUT, DELETE, OPTIONS"
    assert r.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    assert r.headers["access-control-max-age"] == "86400"
    for response in (httpx.get(plain.url + "/queues/x/counts"), httpx.get(plain.url + "/jobs/nope"),
                     httpx.post(plain.url + "/queues/x/jobs", json={"data": 1})):  # fmt: skip
        assert response.headers["access-control-allow-origin"] == "*"


def test_cors_origin_list_echoes_the_matching_origin(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=1, CORS_ALLOW_ORIGIN="https://a.example,https://b.example")
    server.start()
    try:
        ok = httpx.get(server.url + "/queues/x/counts", headers={"Origin": "https://b.example"})
        assert ok.headers["access-control-allow-origin"] == "https://b.example" and ok.headers["vary"] == "Origin"
        other = httpx.get(server.url + "/queues/x/counts", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        for origin, allowed in (("https://a.example", "https://a.example"), ("https://evil.example", None)):
            push = httpx.post(server.url + "/queues/x/jobs", json={"data": 1}, headers={"Origin": origin})
            assert push.status_code == 200 and push.headers["vary"] == "Origin"  # a hot route, served alike
            assert push.headers.get("access-control-allow-origin") == allowed
        ws_url = server.url.replace("http", "ws") + "/ws"
        with pytest.raises(InvalidStatus) as refused:  # a page elsewhere cannot drive the WebSocket either
            ws_connect(ws_url, origin=Origin("https://evil.example"), open_timeout=10).close()
        assert refused.value.response.status_code == 403
        for origin in (Origin("https://a.example"), None):  # an allowed page, and a client that is no page
            with ws_connect(ws_url, origin=origin, open_timeout=10) as ws:
                ws.send(json.dumps({"cmd": "Ping", "reqId": "p"}))
                assert json.loads(ws.recv(timeout=10))["ok"] is True
    finally:
        server.stop()


def test_rate_limit_holds_across_fronts(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=1, fronts=2, RATE_LIMIT_MAX_REQUESTS="20",
                        RATE_LIMIT_WINDOW_MS="60000")  # fmt: skip
    server.start()
    try:
        codes = []
        for _ in range(30):
            with httpx.Client(base_url=server.url, timeout=30) as c:  # a new connection each: both fronts serve
                codes.append(
                    c.get("/queues/x/counts", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}).status_code
                )
        assert codes.count(200) == 20 and codes.count(429) == 10
        limited = httpx.get(server.url + "/queues/x/counts", headers={"X-Forwarded-For": "203.0.113.7"})
        assert limited.json() == {"ok": False, "error": "Rate limit exceeded"}
        assert httpx.get(server.url + "/queues/x/counts", headers={"X-Real-IP": "198.51.100.1"}).status_code == 200
        assert httpx.get(server.url + "/health", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200
        ws_url = server.url.replace("http", "ws") + "/ws"
        with pytest.raises(InvalidStatus) as refused:  # the upgrade is a request: over the limit, refused
            ws_connect(ws_url, additional_headers={"X-Forwarded-For": "203.0.113.7"}, open_timeout=10).close()
        assert refused.value.response.status_code == 403
    finally:
        server.stop()


def test_oversize_body_is_refused_while_reading(plain: BunqServer) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"data":"'
        for _ in range(64):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    with httpx.Client(base_url=plain.url, timeout=30) as c:
        r = c.post("/queues/big/jobs", content=body())
        assert r.status_code == 413 and r.json()["ok"] is False
        raw = socket.create_connection(("127.0.0.1", plain.port))
        raw.sendall(b"POST /queues/big/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{")
        raw.settimeout(5)
        assert b" 413 " in raw.recv(4096).split(b"\r\n", 1)[0] + b" "  # refused before any body is read
        raw.close()
        assert c.get("/queues/big/counts").json()["counts"]["waiting"] == 0


def test_slow_clients_are_cut_off_while_others_are_served(plain: BunqServer) -> None:
    host, port = "127.0.0.1", plain.port
    slow: list[socket.socket] = []
    for _ in range(200):
        s = socket.create_connection((host, port))
        s.sendall(b"GET /queues/x/counts HTTP/1.1\r\nHost: x\r\n")  # the head never completes
        slow.append(s)
    started = time.monotonic()
    with httpx.Client(base_url=plain.url, timeout=30) as c:
        for _ in range(20):
            assert c.get("/queues/x/counts").status_code == 200
    served_in = time.monotonic() - started
    time.sleep(1.5)
    closed = 0
    for s in slow:
        s.settimeout(2)
        try:
            if s.recv(1024) == b"":
                closed += 1
        except (ConnectionResetError, TimeoutError, OSError):
            closed += 1
        s.close()
    assert closed == len(slow)
    assert served_in < 10
    drip = socket.create_connection((host, port))
    drip.sendall(
        b"POST /queues/x/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
    )
    drip.settimeout(5)
    answer = drip.recv(4096)
    drip.close()
    assert b"408" in answer.split(b"\r\n", 1)[0]


def test_a_keep_alive_connection_has_a_new_head_deadline_after_each_response(plain: BunqServer) -> None:
    """Requests closer together than the deadline (1 s here) keep a connection for longer than it; once the
    connection idles past it after a response, it is closed. Each response comes as one whole reply."""
    s = socket.create_connection(("127.0.0.1", plain.port))
    s.settimeout(5)
    request = b"GET /queues/x/counts HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        for _ in range(4):  # 4 x 0.6 s: past the deadline in all, never past it since a response
            s.sendall(request)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
                chunk = s.recv(4096)
                assert chunk, "the connection closed while it was in use"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200 ") and b"server:" not in reply.lower()
            time.sleep(0.6)
        s.settimeout(3)
        assert s.recv(4096) == b"", "an idle connection outlived its head deadline"
    finally:
        s.close()


def test_an_idle_connection_is_closed_at_the_keep_alive_timeout(secured: BunqServer) -> None:
    """With the default 10 s head deadline, a connection idle after its response goes at uvicorn's 5 s keep-alive
    timeout; one that starts its next request in time is served."""

    def served(s: socket.socket) -> bytes:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"}"):
            chunk = s.recv(4096)
            assert chunk, "closed while in use"
            reply += chunk
        return reply

    with socket.create_connection(("127.0.0.1", secured.port)) as s:
        s.settimeout(12)
        assert served(s).startswith(b"HTTP/1.1 200 ")
        time.sleep(3)
        assert served(s).startswith(b"HTTP/1.1 200 "), "closed before the keep-alive timeout"
        idle_from = time.monotonic()
        assert s.recv(4096) == b""
        assert time.monotonic() - idle_from < 8, "the idle connection was kept until the head deadline"


def test_monitoring_endpoints(plain: BunqServer) -> None:
    with httpx.Client(base_url=plain.url, timeout=30) as c:
        job = c.post("/queues/mon/jobs", json={"data": 1}).json()["id"]
        c.get("/queues/mon/jobs")
        c.post(f"/jobs/{job}/ack", json={})
        c.post("/queues/mon/jobs", json={"data": 2})
        health = c.get("/health").json()
        assert health["status"] == "healthy" and health["version"] and health["uptime"] >= 0
        assert set(health["queues"]) == {"waiting", "active", "delayed", "completed", "dlq"}
        assert set(health["connections"]) == {"tcp", "ws", "sse"} and health["connections"]["tcp"] == 0
        assert set(health["memory"]) == {"heapUsed", "heapTotal", "rss"}
        assert c.get("/healthz").text == "OK" and c.get("/live").text == "OK"
        assert c.get("/ready").json() == {"ok": True, "ready": True}
        pong = c.get("/ping").json()
        assert pong["ok"] and pong["data"]["pong"] is True and pong["data"]["time"] > 0
        stats = c.get("/stats").json()
        assert stats["stats"]["totalPushed"] >= 2 and stats["stats"]["totalCompleted"] >= 1
        assert {"heapUsed", "heapTotal", "rss", "external", "arrayBuffers"} <= set(stats["memory"])
        assert {"jobIndex", "completedJobs", "processingTotal", "queuedTotal"} <= set(stats["collections"])
        metrics = c.get("/metrics").json()["metrics"]
        assert set(metrics) == {"totalPushed", "totalPulled", "totalCompleted", "totalFailed"}
        assert c.get("/storage").json() | {"ok": True, "diskFull": False} == c.get("/storage").json()
        gc = c.post("/gc").json()
        assert gc["ok"] and set(gc["before"]) == {"heapUsed", "heapTotal", "rss"} and gc["after"]["rss"] > 0
        heap = c.get("/heapstats").json()
        assert heap["ok"] and len(heap["processes"]) == 3 and heap["processes"][1]["topTypes"]
        prom = c.get("/prometheus")
        assert prom.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(prom.text)}
        series = {(s.labels.get("queue"), s.labels.get("state")): s.value for s in families["bunq_queue_jobs"].samples}
        assert series[("mon", "waiting")] == 1 and series[("mon", "completed")] == 1
        assert families["bunq_jobs_pushed"].samples[0].value >= 2
        assert "bunq_job_wait_seconds" in families and "bunq_job_processing_seconds" in families
        assert {s.labels["shard"] for s in families["bunq_shard_jobs"].samples} == {"0", "1"}
        dropped = {s.labels["shard"]: s.value for s in families["bunq_shard_events_dropped"].samples}
        assert dropped == {"0": 0, "1": 0}
        assert [s.value for s in families["bunq_aggregator_up"].samples] == [1]
        assert [s.value for s in families["bunq_aggregator_events_dropped"].samples] == [0]


def test_durable_pushes_are_refused_when_the_disk_is_full(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=1, BUNQ_MIN_FREE_DISK_MB=str(1 << 29))  # "full" at any size
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            deadline = time.monotonic() + 15
            while not c.get("/storage").json()["diskFull"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get("/storage").json()["diskFull"] is True
            refused = c.post("/queues/d/jobs", json={"data": 1, "durable": True})
            assert refused.status_code == 503 and "Disk full" in refused.json()["error"]
            assert c.post("/queues/d/jobs", json={"data": 1}).status_code == 200
            assert c.get("/health").json()["status"] == "degraded"
    finally:
        server.stop()


def front_rss(server: BunqServer) -> int:
    """Resident memory of the front: the uvicorn process and its worker processes."""
    front = psutil.Process(server.children()["front"])
    return sum(proc.memory_info().rss for proc in (front, *front.children(recursive=True)))


def endless_head(port: int, opening: bytes, filler: bytes, limit: int = 100 * 1024 * 1024) -> tuple[bytes, int]:
    """Send a request head that goes on for `limit` bytes (`opening`, then `filler` over and over), stopping
    as soon as the server answers or closes; what it answered and how much was sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    chunk = filler * (1024 * 1024 // len(filler))
    sent = 0
    try:
        sock.sendall(opening)
        while sent < limit and not select.select([sock], [], [], 0)[0]:
            sock.sendall(chunk)
            sent += len(chunk)
        answer = b""
        while len(answer) < 4096 and (data := sock.recv(4096)):
            answer += data
    except OSError:
        answer = b""
    finally:
        sock.close()
    return answer, sent


def test_huge_request_heads_are_refused_without_being_read(plain: BunqServer) -> None:
    port = plain.port
    heads = [
        (b"GET /queues/x/counts HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a"),  # one endless header line
        (b"GET /queues/x/counts HTTP/1.1\r\nHost: x\r\nX-Big: ", b"b"),
        (b"GET /queues/x/counts HTTP/1.1\r\nHost: x\r\n", b"X-Many: value\r\n"),  # endless small headers
        (b"GET /queues/x/counts?q=", b"c"),  # an endless request line
    ]
    httpx.get(plain.url + "/queues/x/counts")
    before = front_rss(plain)
    with concurrent.futures.ThreadPoolExecutor(len(heads)) as pool:
        results = [pool.submit(endless_head, port, opening, filler) for opening, filler in heads]
        peak = before
        while not all(r.done() for r in results):
            peak = max(peak, front_rss(plain))
            time.sleep(0.02)
        peak = max(peak, front_rss(plain))
    assert peak - before < 20 * 1024 * 1024, (before, peak)
    for result in results:
        answer, sent = result.result()
        assert sent < 20 * 1024 * 1024  # cut off near the cap, not read to the end
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"connection: close" in status.lower()
        assert json.loads(body) == {"ok": False, "error": "Request header fields too large"}


def test_heads_up_to_the_cap_are_served_and_larger_ones_refused(plain: BunqServer) -> None:
    with httpx.Client(base_url=plain.url, timeout=30) as c:
        near_cap = {f"x-fill-{i}": "v" * 1000 for i in range(60)}  # 60 KiB of headers
        assert c.get("/queues/x/counts", headers=near_cap).status_code == 200
        assert c.get("/queues/x/counts").status_code == 200  # the connection stays usable
        long_url = c.get("/queues/x/counts", params={"q": "u" * 60_000})
        assert long_url.status_code == 200
        refused = c.get("/queues/x/counts", headers={f"x-fill-{i}": "v" * 1000 for i in range(70)})
        assert refused.status_code == 431
        assert refused.json() == {"ok": False, "error": "Request header fields too large"}
        assert refused.headers["access-control-allow-origin"] == "*"
        assert c.get("/queues/x/counts").status_code == 200  # on a new connection
    raw = socket.create_connection(("127.0.0.1", plain.port))
    raw.settimeout(10)
    pipelined = b"GET /queues/x/counts HTTP/1.1\r\nHost: x\r\n\r\n" * 1600  # 70 KB of small heads at once
    raw.sendall(pipelined)
    answers = b""
    while answers.count(b"HTTP/1.1 200 ") < 1600 and (data := raw.recv(65536)):
        answers += data
    raw.close()
    assert answers.count(b"HTTP/1.1 200 ") == 1600 and b" 431 " not in answers


def test_rate_limit_is_a_sliding_window_across_fronts(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=1, fronts=2, RATE_LIMIT_MAX_REQUESTS="5",
                        RATE_LIMIT_WINDOW_MS="1000")  # fmt: skip
    server.start()

    def burst(ip: str, n: int) -> tuple[list[int], float]:
        """n requests, each on a new connection (so both fronts serve), and when the last one ended."""
        codes = []
        for _ in range(n):
            with httpx.Client(base_url=server.url, timeout=30) as c:
                r = c.get("/queues/x/counts", headers={"X-Forwarded-For": ip})
                codes.append(r.status_code)
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "1"
        return codes, time.monotonic()

    try:
        for attempt in range(3):  # a burst must fit in one window; on a machine too busy for that, again
            ip = f"203.0.113.{attempt}"
            started = time.monotonic()
            codes, ended = burst(ip, 8)
            if ended - started >= 0.9:
                continue
            assert codes == [200] * 5 + [429] * 3
            time.sleep(max(0.0, ended + 1.0 - time.monotonic()))  # every admission has left the window
            started = time.monotonic()
            codes, ended = burst(ip, 7)
            if ended - started >= 0.9:
                continue
            assert codes == [200] * 5 + [429] * 2
            break
        else:
            pytest.fail("no burst of 8 requests fitted in 0.9 s")
    finally:
        server.stop()


def http_connections(url: str) -> int:
    """`bunqueue_connections{transport="http"}` of a scrape: every front's HTTP connections, as last reported."""
    text = httpx.get(url + "/prometheus", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "bunqueue_connections" and sample.labels.get("transport") == "http":
                return int(sample.value)
    raise AssertionError('no bunqueue_connections{transport="http"} sample')


def settle_http(url: str, done: Callable[[int], bool]) -> int:
    deadline = time.monotonic() + 10
    count = http_connections(url)
    while not done(count) and time.monotonic() < deadline:
        time.sleep(0.05)
        count = http_connections(url)
    return count


def test_health_counts_the_connections_of_every_front(plain: BunqServer) -> None:
    def connections() -> dict[str, int]:
        counts: dict[str, int] = httpx.get(plain.url + "/health", timeout=10).json()["connections"]
        return counts

    def settle(done: Callable[[dict[str, int]], bool]) -> dict[str, int]:
        deadline = time.monotonic() + 10
        counts = connections()
        while not done(counts) and time.monotonic() < deadline:
            time.sleep(0.05)
            counts = connections()
        return counts

    idle = settle(lambda c: c["ws"] == 0 and c["sse"] == 0)
    ws_url = plain.url.replace("http://", "ws://")
    with contextlib.ExitStack() as stack:
        for i in range(8):
            stack.enter_context(ws_connect(ws_url + ("/ws" if i % 2 else "/ws/queues/conn-q")))
            sse = stack.enter_context(socket.create_connection(("127.0.0.1", plain.port)))
            sse.settimeout(10)
            sse.sendall(f"GET /events{'/queues/conn-q' if i % 2 else ''} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = b""
            while b"connected" not in received:
                received += sse.recv(4096)
        settle(lambda c: c["ws"] == 8 and c["sse"] == 8)
        for _ in range(10):  # each on a new connection: either front answers
            counts = connections()
            assert (counts["ws"], counts["sse"]) == (8, 8), counts
            assert counts["tcp"] == 0  # bunqueue-protocol clients only, as the reference counts
        http = settle_http(plain.url, lambda n: n >= 8 + 1)
        assert http >= 8 + 1  # Prometheus: the SSE streams and the scrape (a WebSocket is no longer HTTP)
        too_large = {f"x-fill-{i}": "v" * 1000 for i in range(70)}
        with pytest.raises(InvalidStatus) as refused:  # the upgrade's head is capped too
            stack.enter_context(ws_connect(ws_url + "/ws", additional_headers=too_large))
        assert refused.value.response.status_code == 431
    after = settle(lambda c: c["ws"] == 0 and c["sse"] == 0 and c["tcp"] <= idle["tcp"])
    assert (after["ws"], after["sse"]) == (0, 0) and after["tcp"] <= idle["tcp"]  # upgraded ones no longer count


def test_a_client_that_pipelines_without_reading_is_read_no_further(server: BunqServer) -> None:
    """HTTP/1.1 requests pipelined back to back by a client that never reads wait in the kernel's buffers,
    not in the front: once its responses back up, the front reads no more of them (the client's sends
    block), where uvicorn alone queued one more read's worth after every response (a front grew past 3 GB).
    When the client reads, every response comes in order, and the connection goes on."""
    request = b"GET /live HTTP/1.1\r\nHost: bunq\r\nX-Pad: " + b"p" * 1000 + b"\r\n\r\n"
    chunk = request * 100
    limit = 200_000  # requests; the front stops reading after about the kernel's buffers' worth
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(3.0)  # a send that waits this long: the front has stopped reading
    sent = 0
    try:
        with pytest.raises(TimeoutError):
            while sent < limit * len(request):
                sent += sock.send(chunk[sent % len(chunk) :])
        rest = (-sent) % len(request)  # the request cut by the timeout, completed once responses are read
        requests = (sent + rest) // len(request)
        sock.settimeout(10.0)
        received = b""
        while rest:
            received += sock.recv(1 << 20)
            rest -= sock.send(request[len(request) - rest :])
        while received.count(b"HTTP/1.1 200 OK") < requests:
            received += sock.recv(1 << 20)
        assert received.count(b"HTTP/1.1 ") == requests
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: bunq\r\n\r\n")
        more = b""
        while not more.endswith(b"OK"):
            more += sock.recv(4096)
        assert more.startswith(b"HTTP/1.1 200 OK")
    finally:
        sock.close()


def test_the_hot_routes_answer_pipelined_requests_in_order_with_whole_heads(server: BunqServer) -> None:
    """Push, bulk push, a refused push and a pull, pipelined on one connection: each response has the status
    line, the date, its type, CORS and its length, in the order the requests came, and the connection stays
    open; the jobs are stored as the replies say."""
    queue = "edge-hot-pipeline"
    bodies = [b'{"data": {"n": 1}}', b'{"data": ', b'{"data": {"n": 2}}']
    requests = b"".join(
        b"POST /queues/%s/jobs HTTP/1.1\r\nHost: bunq\r\nContent-Length: %d\r\n\r\n%s" % (queue.encode(), len(b), b)
        for b in bodies
    )
    requests += b"GET /queues/%s/jobs HTTP/1.1\r\nHost: bunq\r\n\r\n" % queue.encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(requests)
        responses = read_responses(sock, 4)
        for head, _ in responses:
            lines = head.split(b"\r\n")
            names = {line.split(b":")[0].lower() for line in lines[1:]}
            assert {b"date", b"content-type", b"content-length", b"access-control-allow-origin"} <= names
            assert b"connection" not in names
        assert [head.split(b"\r\n")[0] for head, _ in responses] == [
            b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK",
        ]  # fmt: skip
        first, refused, second, pulled = (json.loads(body) for _, body in responses)
        assert first["ok"] and second["ok"] and refused == {"ok": False, "error": "Invalid JSON body"}
        assert pulled["job"]["id"] == first["id"] and pulled["job"]["data"] == {"n": 1}
        sock.sendall(b"GET /queues/%s/counts HTTP/1.1\r\nHost: bunq\r\n\r\n" % queue.encode())
        ((_, counts),) = read_responses(sock, 1)
        assert json.loads(counts)["counts"]["waiting"] == 1 and json.loads(counts)["counts"]["active"] == 1


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /queues/edge-hot-close/jobs HTTP/1.0\r\n",
        b"POST /queues/edge-hot-close/jobs HTTP/1.1\r\nConnection: close\r\n",
    ],
    ids=["http-1.0", "connection-close"],
)
def test_a_hot_route_closes_a_connection_the_client_does_not_keep(server: BunqServer, request_head: bytes) -> None:
    """An HTTP/1.0 request, or one that says `Connection: close`, gets `connection: close` and then the end of
    the connection, after the whole response."""
    body = b'{"data": 1}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_head + b"Host: bunq\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        ((head, reply),) = read_responses(sock, 1)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\nconnection: close" in head
        assert json.loads(reply)["ok"] is True
        assert sock.recv(4096) == b""


def test_a_client_that_pipelines_pushes_without_reading_gets_every_reply(server: BunqServer) -> None:
    """Bulk pushes pipelined by a client that reads nothing until it has sent them all: their replies (4 MB
    of ids) back up past the socket's buffers and the front's writes pause (the hot routes then answer
    through uvicorn's own send, which waits for the client), and every push is answered and stored."""
    queue = "edge-hot-unread"
    body = json.dumps({"jobs": [{"data": i} for i in range(1000)]}).encode()
    request = b"POST /queues/%s/jobs/bulk HTTP/1.1\r\nHost: bunq\r\nContent-Length: %d\r\n\r\n%s" % (
        queue.encode(), len(body), body,
    )  # fmt: skip
    count = 100
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
        sock.settimeout(60)
        sock.connect(("127.0.0.1", server.port))
        pool = concurrent.futures.ThreadPoolExecutor(1)
        sending = pool.submit(sock.sendall, request * count)
        time.sleep(2.0)  # the replies pile up unread meanwhile
        responses = read_responses(sock, count)
        sending.result(timeout=60)
        pool.shutdown()
    assert all(head.startswith(b"HTTP/1.1 200 OK") for head, _ in responses)
    ids = [job_id for _, reply in responses for job_id in json.loads(reply)["ids"]]
    assert len(set(ids)) == count * 1000
    counts = httpx.get(f"{server.url}/queues/{queue}/counts", timeout=10).json()["counts"]
    assert counts["waiting"] == count * 1000


def test_a_push_is_stored_whatever_way_its_body_comes(server: BunqServer) -> None:
    """The front serves a push from its connection when the body comes whole with the head, and through ASGI
    otherwise: a body in a later read, a chunked body, one behind `Expect: 100-continue`. Each is answered
    and stored with its data alike."""
    queue = "edge-hot-bodies"
    body = b'{"data": {"way": "%s"}}'
    head = b"POST /queues/%s/jobs HTTP/1.1\r\nHost: bunq\r\n" % queue.encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        whole = body % b"whole"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n%s" % (len(whole), whole))
        later = body % b"later"
        sock.sendall(head + b"Content-Length: %d\r\n\r\n%s" % (len(later), later[:5]))
        time.sleep(0.2)  # the rest in a read of its own
        sock.sendall(later[5:])
        chunked = body % b"chunked"
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(chunked), chunked))
        replies = read_responses(sock, 3)
        continued = body % b"continued"
        sock.sendall(head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(continued))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(continued)
        replies += read_responses(sock, 1)
    assert [head.split(b"\r\n")[0] for head, _ in replies] == [b"HTTP/1.1 200 OK"] * 4
    ids = [json.loads(reply)["id"] for _, reply in replies]
    ways = [httpx.get(f"{server.url}/jobs/{job_id}", timeout=10).json()["job"]["data"]["way"] for job_id in ids]
    assert ways == ["whole", "later", "chunked", "continued"]


def test_a_client_gone_before_its_reply_leaves_the_front_serving(server: BunqServer) -> None:
    """Clients that send a push and close at once, before its reply: every push is stored (each came whole),
    and the front goes on serving."""
    queue = "edge-hot-gone"
    body = b'{"data": 1}'
    request = b"POST /queues/%s/jobs HTTP/1.1\r\nHost: bunq\r\nContent-Length: %d\r\n\r\n%s" % (
        queue.encode(), len(body), body,
    )  # fmt: skip
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(request)
        sock.close()
    deadline = time.monotonic() + 10
    while True:
        counts = httpx.get(f"{server.url}/queues/{queue}/counts", timeout=10).json()["counts"]
        if counts["waiting"] == 50 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counts["waiting"] == 50
    reply = httpx.post(f"{server.url}/queues/{queue}/jobs", json={"data": 2}, timeout=10)
    assert reply.status_code == 200 and reply.json()["ok"] is True


def test_a_pipelined_long_poll_outlasts_the_head_deadline(plain: BunqServer) -> None:
    """A long-polling pull pipelined behind a push is answered when its wait is over, though that is past
    the head deadline (1 s here): its head came whole with the push's, so no deadline runs while it waits.
    Once it is answered, the connection has a head deadline again."""
    body = b'{"data": 1}'
    requests = b"POST /queues/edge-pipe-push/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    requests += b"GET /queues/edge-pipe-empty/jobs?timeout=2500 HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", plain.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(requests)
        (_, pushed), (_, pulled) = read_responses(sock, 2)
        waited = time.monotonic() - started
        assert json.loads(pushed)["ok"] is True
        assert json.loads(pulled) == {"ok": True, "job": None}
        assert waited >= 2.0  # it was held for its whole wait, not cut off
        sock.settimeout(3)
        assert sock.recv(4096) == b"", "an idle connection outlived its head deadline"
