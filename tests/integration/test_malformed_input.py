"""Malformed input through `bunq serve`: bodies, query strings and headers an attacker would send.

Every one of them must be answered with a JSON `{ok: false, error}` (4xx), never a 5xx, never bytes that
are not JSON, and a refused push must store nothing. The named cases are the ones black-box checks
found; the property tests throw generated garbage at every route family.
"""

from __future__ import annotations

import json
import random
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from bunq.app import create_app
from bunq.settings import Settings
from bunq.validation import MAX_DEPTH
from tests.support.processes import BunqServer, running

pytestmark = pytest.mark.integration

BIG = "9" * 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    """One server for the module (a module-scoped `server`, shadowing the per-test one): these tests only read."""
    with running(tmp_path_factory.mktemp("malformed") / "data", shards=2) as bunq:
        yield bunq


@pytest.fixture(scope="module")
def http(server: BunqServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def refused(response: httpx.Response, status: int = 400) -> str:
    """The error of a refusal, after checking it is one: the status, and a UTF-8 JSON `{ok: false}`."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = json.loads(response.content.decode("utf-8"))
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def total(http: httpx.Client, queue: str) -> int:
    r = http.get(f"/queues/{queue}/count")
    assert r.status_code == 200
    return int(r.json()["count"])


def nested(depth: int, kind: str = "[") -> bytes:
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# ---- the cases that were accepted or answered 500 --------------------------------------------------

BAD_PUSH_BODIES = {
    "invalid utf-8 in data": b'{"data": {"s": "\xff\xfe"}}',
    "invalid utf-8 in an option": b'{"data": 1, "groupId": "\xc3\x28"}',
    "overlong utf-8": b'{"data": "\xc0\xaf"}',
    "utf-16 surrogate bytes": b'{"data": "\xed\xa0\x80"}',
    "arrays 10,000 deep": b'{"data": ' + nested(10_000) + b"}",
    "objects 10,000 deep": b'{"data": ' + nested(10_000, "{") + b"}",
    "just past the nesting limit": b'{"data": ' + nested(MAX_DEPTH) + b"}",
    "repeated open objects": b'{"data":' * 3000,
    "repeat 1e400": b'{"data": 1, "repeat": 1e400}',
    "repeat as a 5000-digit integer": b'{"data": 1, "repeat": ' + BIG.encode() + b"}",
    "repeat.every as a 5000-digit integer": b'{"data": 1, "repeat": {"every": ' + BIG.encode() + b"}}",
    "priority as a 5000-digit integer": b'{"data": 1, "priority": ' + BIG.encode() + b"}",
    "priority as a negative 5000-digit integer": b'{"data": 1, "priority": -' + BIG.encode() + b"}",
    "delay 1e400": b'{"data": 1, "delay": 1e400}',
    "maxAttempts -1e400": b'{"data": 1, "maxAttempts": -1e400}',
    "ttl as a 5000-digit integer": b'{"data": 1, "ttl": ' + BIG.encode() + b"}",
}


@pytest.mark.parametrize("body", BAD_PUSH_BODIES.values(), ids=BAD_PUSH_BODIES.keys())
def test_a_malformed_push_is_refused_and_stores_nothing(http: httpx.Client, body: bytes) -> None:
    queue = "bad-push"
    before = total(http, queue)
    refused(http.post(f"/queues/{queue}/jobs", content=body, headers={"content-type": "application/json"}))
    assert total(http, queue) == before
    entry = body.replace(b'{"data"', b'{"jobs": [{"data": 1}, {"data"', 1) + b"]}"
    refused(http.post(f"/queues/{queue}/jobs/bulk", content=entry))
    assert total(http, queue) == before
    assert http.get(f"/queues/{queue}/jobs").json() == {"ok": True, "job": None}


def test_the_nesting_limit_is_documented_and_exact(http: httpx.Client) -> None:
    """The body itself is the first level: `data` may nest MAX_DEPTH - 1 levels, and comes back intact."""
    deepest = json.loads(nested(MAX_DEPTH - 1))
    r = http.post("/queues/deep-ok/jobs", json={"data": deepest})
    assert r.status_code == 200, r.text
    got = http.get(f"/jobs/{r.json()['id']}").json()["job"]
    assert got["data"] == deepest
    error = refused(http.post("/queues/deep-ok/jobs", content=b'{"data": ' + nested(MAX_DEPTH) + b"}"))
    assert error == f"JSON nested too deeply (max {MAX_DEPTH} levels)"
    brackets_in_strings = {"s": "[" * 5000 + "{" * 5000, "t": '\\"[[[['}
    assert http.post("/queues/deep-ok/jobs", json={"data": brackets_in_strings}).status_code == 200


def test_invalid_utf8_is_refused_on_every_json_body(http: httpx.Client) -> None:
    job_id = http.post("/queues/utf8/jobs", json={"data": {"ok": 1}}).json()["id"]
    pulled = http.get("/queues/utf8/jobs").json()
    token = pulled.get("token")
    bad = b'{"result": {"s": "\xff"}, "data": "\xff", "message": "\xff", "error": "\xff", "name": "\xff"}'
    for method, path in [
        ("POST", f"/jobs/{job_id}/ack"),
        ("POST", f"/jobs/{job_id}/fail"),
        ("PUT", f"/jobs/{job_id}/data"),
        ("POST", f"/jobs/{job_id}/logs"),
        ("POST", f"/jobs/{job_id}/progress"),
        ("POST", "/jobs/ack-batch"),
        ("POST", "/crons"),
        ("POST", "/workers"),
        ("POST", "/webhooks"),
        ("PUT", "/queues/utf8/stall-config"),
    ]:
        refused(http.request(method, path, content=bad))
    job = http.get(f"/jobs/{job_id}").json()["job"]
    assert job["state"] == "active" and job["data"] == {"ok": 1}
    assert http.post(f"/jobs/{job_id}/ack", json={"result": 1, "token": token}).status_code == 200


def test_deep_json_in_other_bodies_is_refused(http: httpx.Client) -> None:
    deep = nested(10_000)
    for method, path, body in [
        ("POST", "/jobs/ack-batch", b'{"ids": ["x"], "results": [' + deep + b"]}"),
        ("POST", "/crons", b'{"name": "deep", "queue": "q", "repeatEvery": 1000, "data": ' + deep + b"}"),
        ("PUT", "/queues/deep/dlq-config", b'{"config": ' + deep + b"}"),
        ("POST", "/queues/deep/jobs/pull-batch", b'{"count": ' + deep + b"}"),
        ("POST", "/jobs/some-id/wait", b'{"timeout": ' + BIG.encode() + b"}"),
        ("POST", "/queues/deep/clean", b'{"grace": 1e400}'),
        ("POST", "/queues/deep/jobs/pull-batch", b'{"count": 1, "timeout": -' + BIG.encode() + b"}"),
    ]:
        refused(http.request(method, path, content=body))


def test_huge_numbers_in_query_strings_are_refused(http: httpx.Client) -> None:
    for path in [
        f"/queues/q/jobs?timeout={BIG}",
        f"/queues/q/jobs?timeout=-{BIG}",
        "/queues/q/jobs?timeout=1e400",
        f"/queues/q/jobs/list?limit={BIG}",
        f"/queues/q/jobs/list?offset=-{BIG}",
        "/queues/q/jobs/list?limit=%C2%B2",  # a superscript two: a digit to str.isdigit, not to int()
        f"/queues/q/dlq?count={BIG}",
    ]:
        refused(http.get(path))


def test_an_empty_queue_name_is_400_on_every_queue_route(http: httpx.Client) -> None:
    app = create_app(Settings.from_env({"BUNQ_SHARDS": "1"}))
    app.state.client.ctx.term()
    routes = [r for r in app.routes if isinstance(r, Route) and "{queue" in r.path]
    assert len(routes) > 25
    for route in routes:
        path = re.sub(r"\{queue[^}]*\}", "", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            r = http.request(method, path, json={} if method != "GET" else None)
            assert refused(r) == "Queue name is required", (method, path)


def test_a_websocket_command_nested_too_deeply_is_refused(server: BunqServer) -> None:
    from websockets.sync.client import connect

    with connect(server.url.replace("http", "ws") + "/ws") as ws:
        ws.send(b'{"cmd": "PUSH", "queue": "ws-deep", "reqId": "1", "data": ' + nested(10_000) + b"}")
        assert reply_to(ws, None) == {"ok": False, "error": f"JSON nested too deeply (max {MAX_DEPTH} levels)"}
        ws.send(b'{"cmd": "PUSH", "queue": "ws-deep", "reqId": "2", "data": {"s": "\xff"}}')
        assert reply_to(ws, None) == {"ok": False, "error": "Invalid JSON"}  # ws-commands.md
        ws.send(json.dumps({"cmd": "PUSH", "queue": "ws-deep", "data": {"n": 1}, "reqId": "3"}))
        assert reply_to(ws, "3")["ok"] is True


def test_a_websocket_command_missing_its_fields_is_told_which(server: BunqServer) -> None:
    """As over HTTP: the handler names the missing field (the message used to reach it as no JSON at all,
    "Invalid JSON body"), and nothing is stored."""
    from websockets.sync.client import connect

    with connect(server.url.replace("http", "ws") + "/ws") as ws:
        ws.send(json.dumps({"cmd": "PUSH", "queue": "ws-missing", "reqId": "1"}))
        assert reply_to(ws, "1") == {"ok": False, "error": "data is required", "reqId": "1"}
        ws.send(json.dumps({"cmd": "Cron", "reqId": "2"}))
        assert reply_to(ws, "2")["error"] == "name is required"
        ws.send(json.dumps({"cmd": "Count", "queue": "ws-missing", "reqId": "3"}))
        assert reply_to(ws, "3") == {"ok": True, "count": 0, "reqId": "3"}
        for n, queue in enumerate((None, "", [], {"a": 1})):
            message = {"cmd": "PUSH", "data": {}, "reqId": f"q{n}"} | ({} if queue is None else {"queue": queue})
            ws.send(json.dumps(message))
            said = "Queue name must be a string" if queue else "Queue name is required"  # the spec's words
            assert reply_to(ws, f"q{n}") == {"ok": False, "error": said, "reqId": f"q{n}"}
        ws.send(json.dumps({"cmd": "Count", "queue": "ws-missing", "reqId": "4"}))
        assert reply_to(ws, "4")["count"] == 0


def test_a_websocket_command_refused_before_it_is_read_still_carries_its_req_id(server: BunqServer) -> None:
    """Text that is JSON to the standard parser but that bunq refuses (a lone surrogate): a client that
    matches replies by reqId gets its answer."""
    from websockets.sync.client import connect

    with connect(server.url.replace("http", "ws") + "/ws") as ws:
        ws.send('{"cmd": "GetJob", "id": "\\ud800", "reqId": "lone"}')
        refused = reply_to(ws, "lone")
        assert refused["ok"] is False and refused["error"]
        ws.send("[1, 2]")  # no reqId to give back
        assert reply_to(ws, None) == {"ok": False, "error": "Invalid command"}  # no object: no command


def reply_to(ws: Any, req_id: str | None) -> dict[str, Any]:
    """The reply with this reqId (None: to a message too broken to carry one), skipping the job events a
    client that never subscribed receives in between."""
    for _ in range(100):
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if message.get("reqId") == req_id and "eventType" not in message:
            return message
    raise AssertionError(f"no reply to {req_id}")


# ---- generated garbage over every route family -----------------------------------------------------

NASTY_NUMBERS = ["0", "-1", "1.5", "1e400", "-1e400", BIG, "-" + BIG, "1e308", "9223372036854775808", "-0.0"]
NASTY_TEXT = ['""', '"\\ud800"', '"x"', '"' + "a" * 2000 + '"', '"\\u0000"', '"../../etc"', '"waiting"']
NASTY_VALUES = [*NASTY_NUMBERS, *NASTY_TEXT, "true", "null", "[]", "{}", '[1, "a", null]', '{"a": {}}']
NASTY_VALUES += [nested(MAX_DEPTH + 5).decode(), '"\\ud83d\\ude00"', '{"every": ' + BIG + "}"]
FIELDS = [
    "data", "priority", "delay", "maxAttempts", "backoff", "ttl", "timeout", "uniqueKey", "jobId", "tags",
    "groupId", "lifo", "removeOnComplete", "durable", "dependsOn", "repeat", "jobs", "count", "owner", "lockTtl",
    "ids", "tokens", "results", "result", "error", "token", "progress", "message", "level", "duration",
    "durations", "grace", "state", "limit", "id", "jobId", "config", "name", "queue", "schedule", "repeatEvery",
    "timezone", "maxLimit", "url", "events", "secret", "enabled", "queues", "concurrency", "stallInterval",
]  # fmt: skip

# (method, path template, family); {q} is a queue name, {id} a job id, {name} a registry key
ROUTES = [
    ("POST", "/queues/{q}/jobs", "push"),
    ("POST", "/queues/{q}/jobs/bulk", "bulk"),
    ("GET", "/queues/{q}/jobs", "pull"),
    ("POST", "/queues/{q}/jobs/pull-batch", "pull"),
    ("GET", "/jobs/{id}", "job"),
    ("DELETE", "/jobs/{id}", "job"),
    ("POST", "/jobs/{id}/ack", "job"),
    ("POST", "/jobs/ack-batch", "job"),
    ("POST", "/jobs/{id}/fail", "job"),
    ("GET", "/jobs/{id}/state", "job"),
    ("GET", "/jobs/{id}/result", "job"),
    ("GET", "/jobs/custom/{id}", "job"),
    ("POST", "/jobs/{id}/progress", "job"),
    ("PUT", "/jobs/{id}/data", "job"),
    ("PUT", "/jobs/{id}/priority", "job"),
    ("POST", "/jobs/{id}/promote", "job"),
    ("POST", "/jobs/{id}/move-to-delayed", "job"),
    ("PUT", "/jobs/{id}/delay", "job"),
    ("POST", "/jobs/{id}/discard", "job"),
    ("POST", "/jobs/{id}/heartbeat", "job"),
    ("POST", "/jobs/heartbeat-batch", "job"),
    ("POST", "/jobs/{id}/extend-lock", "job"),
    ("POST", "/jobs/extend-locks", "job"),
    ("POST", "/jobs/{id}/logs", "job"),
    ("GET", "/jobs/{id}/logs", "job"),
    ("GET", "/jobs/{id}/children", "job"),
    ("GET", "/queues/{q}/jobs/list", "queue"),
    ("GET", "/queues/{q}/counts", "queue"),
    ("GET", "/queues/{q}/priority-counts", "queue"),
    ("GET", "/queues/{q}/paused", "queue"),
    ("POST", "/queues/{q}/pause", "queue"),
    ("POST", "/queues/{q}/resume", "queue"),
    ("POST", "/queues/{q}/drain", "queue"),
    ("POST", "/queues/{q}/clean", "queue"),
    ("POST", "/queues/{q}/promote-jobs", "queue"),
    ("POST", "/queues/{q}/retry-completed", "queue"),
    ("GET", "/queues/{q}/dlq", "queue"),
    ("POST", "/queues/{q}/dlq/retry", "queue"),
    ("PUT", "/queues/{q}/rate-limit", "queue"),
    ("PUT", "/queues/{q}/concurrency", "queue"),
    ("GET", "/queues/{q}/stall-config", "queue"),
    ("PUT", "/queues/{q}/stall-config", "queue"),
    ("PUT", "/queues/{q}/dlq-config", "queue"),
    ("POST", "/crons", "registry"),
    ("GET", "/crons/{name}", "registry"),
    ("DELETE", "/crons/{name}", "registry"),
    ("POST", "/webhooks", "registry"),
    ("PUT", "/webhooks/{name}/enabled", "registry"),
    ("DELETE", "/webhooks/{name}", "registry"),
    ("POST", "/workers", "registry"),
    ("POST", "/workers/{name}/heartbeat", "registry"),
]
QUEUES = ["fuzz", "fuzz.b", "a" * 257, "bad queue", "q%2Fslash", "%ff", "..", "q\u00e9", "~"]
IDS = ["nope", "0" * 36, "019ce9d7-6983-7000-946f-48737be2b0f9", "%00", "x" * 2000, "%ff%fe", "a%2Fb"]
QUERY_KEYS = ["timeout", "state", "limit", "offset", "count", "owner", "lockTtl"]
QUERY_VALUES = ["", "abc", "-1", "1e400", "nan", "inf", BIG, "-" + BIG, "%C2%B2", "%ff", "0x10", " 1", "1 "]


@st.composite
def json_object(draw: st.DrawFn) -> bytes:
    """A JSON object (as text, so out-of-range numbers survive) of spec fields with nasty values."""
    keys = draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True))
    values = [draw(st.sampled_from(NASTY_VALUES)) for _ in keys]
    if "jobs" in keys and draw(st.booleans()):
        entry = draw(json_object())
        values[keys.index("jobs")] = f'[{{"data": 1}}, {entry.decode("utf-8", "replace")}]'
    members = ", ".join(f'"{k}": {v}' for k, v in zip(keys, values, strict=True))
    return ("{" + members + "}").encode()


def mangled(body: bytes, seed: int) -> bytes:
    """A body with a few bytes replaced, cut short, or with invalid UTF-8 spliced in."""
    rng = random.Random(seed)
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        how = rng.choice(["byte", "cut", "utf8"])
        at = rng.randint(0, len(data))
        if how == "byte" and data:
            data[min(at, len(data) - 1)] = rng.randint(0, 255)
        elif how == "cut":
            del data[at:]
        else:
            data[at:at] = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])
    return bytes(data)


bodies = st.one_of(
    json_object(),
    st.builds(mangled, json_object(), st.integers(0, 2**32)),
    st.binary(max_size=64),
    st.sampled_from([b"", b"null", b"[]", b'"x"', b"{", b"}", b'{"data":' * 3000, nested(10_000), b"\xef\xbb\xbf{}"]),
)
queries = st.lists(st.tuples(st.sampled_from(QUERY_KEYS), st.sampled_from(QUERY_VALUES)), max_size=3)
headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from([b"text/plain", b"application/json; charset=latin-1", b"x/\xff"]),
        "x-forwarded-for": st.sampled_from([b"", b"not-an-ip", b"1.2.3.4, ,x", b"\xff" * 50]),
        "authorization": st.sampled_from([b"Bearer", b"Bearer \xe9", b"x" * 5000]),
        "accept": st.sampled_from([b"*/*", b"text/event-stream", b""]),
    },
)


def fill(template: str, queue: str, job_id: str) -> str:
    return template.replace("{q}", queue).replace("{id}", job_id).replace("{name}", job_id)


def check_answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:300])
    body = json.loads(response.content.decode("utf-8"))
    assert isinstance(body, dict) and isinstance(body.get("ok"), bool), body
    if not body["ok"]:
        assert isinstance(body.get("error"), str) and body["error"]
    return body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    queue=st.sampled_from(QUEUES),
    job_id=st.sampled_from(IDS),
    body=bodies,
    query=queries,
    extra=headers,
)
def test_no_malformed_request_gets_a_server_error(
    http: httpx.Client,
    route: tuple[str, str, str],
    queue: str,
    job_id: str,
    body: bytes,
    query: list[tuple[str, str]],
    extra: dict[str, bytes],
) -> None:
    method, template, family = route
    path = fill(template, queue, job_id)
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query)
    counted = family in ("push", "bulk") and queue in ("fuzz", "fuzz.b")
    before = total(http, queue) if counted else 0
    content = None if method in ("GET", "DELETE") else body
    answer = check_answer(http.request(method, path, content=content, headers=extra))
    if counted and not answer["ok"]:
        assert total(http, queue) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_object(), seed=st.integers(0, 2**32))
def test_a_refused_push_changes_no_count(http: httpx.Client, body: bytes, seed: int) -> None:
    """Valid-looking pushes with one bad field, and their mangled twins: refused means nothing stored."""
    for candidate in (b'{"data": {"n": 1}, ' + body[1:] if body != b"{}" else body, mangled(body, seed)):
        before = http.get("/queues/fuzz-count/counts").json()["counts"]
        answer = check_answer(http.post("/queues/fuzz-count/jobs", content=candidate))
        after = http.get("/queues/fuzz-count/counts").json()["counts"]
        if not answer["ok"]:
            assert after == before
        else:
            assert sum(after.values()) >= sum(before.values())


@pytest.mark.parametrize("path", ["/queues/a%2Fb/jobs", "/queues/a%2fb/jobs", "/queues/%2F/jobs"])
def test_an_encoded_slash_in_a_queue_name_is_an_invalid_character(http: httpx.Client, path: str) -> None:
    """As the reference answers: the name is refused for its characters (400), not routed as more segments."""
    response = http.post(path, json={"data": 1})
    assert refused(response) == "Queue name contains invalid characters"
    assert refused(http.get(path.replace("/jobs", "/counts"))) == "Queue name contains invalid characters"
    assert not any("/" in q or "%" in q for q in http.get("/queues").json()["queues"])  # nothing was stored


def test_an_encoded_slash_elsewhere_does_not_change_other_routes(http: httpx.Client) -> None:
    assert http.get("/jobs/no%2Fsuch").json() == {"ok": False, "error": "Job not found"}
    assert http.get("/health").status_code == 200


@pytest.mark.parametrize(
    "head",
    [
        b"POST /queues/framing/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /queues/framing/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\n{}",
        b"GET /queues/framing/counts HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ],
)
def test_bytes_the_http_parser_refuses_get_the_json_error_and_store_nothing(
    server: BunqServer, http: httpx.Client, head: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/json" in status.lower()
    assert b"access-control-allow-origin: *" in status.lower()
    assert json.loads(body) == {"ok": False, "error": "Invalid HTTP request"}
    assert total(http, "framing") == 0


@pytest.mark.parametrize("pipelined", [1, 3], ids=["one", "three"])
def test_requests_before_bytes_the_parser_refuses_are_answered_first(
    server: BunqServer, http: httpx.Client, pipelined: int
) -> None:
    """Whole pushes followed on their connection by bytes the parser refuses (here: a body longer than its
    `Content-Length`): each push is answered 200 with its id, in order, and only then comes the 400 and the
    end of the connection. Before, the 400 went out first and the replies of pushes that were stored were
    lost: their clients read a refusal for a job the queue holds."""
    queue = f"framing-after-{pipelined}"
    body = b'{"data":1}'
    push = b"POST /queues/%s/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        queue.encode(),
        len(body),
        body,
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(push * pipelined + b"GARBAGE\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its last answer
            answer += chunk
    statuses = re.findall(rb"HTTP/1.1 (\d{3}) ", answer)
    assert statuses == [b"200"] * pipelined + [b"400"], answer[:400]
    assert answer.endswith(b'{"ok":false,"error":"Invalid HTTP request"}')
    assert total(http, queue) == pipelined


@pytest.mark.parametrize("ahead", ["push", "long-poll"])
def test_a_pipelined_request_whose_body_breaks_is_answered_after_those_before_it(
    server: BunqServer, http: httpx.Client, ahead: str
) -> None:
    """A request pipelined behind one still being answered (a push, or a long poll that waits 300 ms), whose
    own chunked body the parser refuses: the request before it gets its 200 first, then the broken one its
    400, then the connection ends, and the broken push stored nothing. Before, the 400 went out at once and
    the reply to the request ahead was lost."""
    queue = f"framing-broken-behind-{ahead}"
    body = b'{"data":1}'
    if ahead == "push":
        first = b"POST /queues/%s/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
            queue.encode(),
            len(body),
            body,
        )
    else:
        first = b"GET /queues/%s-empty/jobs?timeout=300 HTTP/1.1\r\nHost: x\r\n\r\n" % queue.encode()
    broken = b"POST /queues/%s/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % queue.encode()
    broken += b"%x\r\n%s\r\nzz\r\n" % (len(body), body)  # a chunk size that is no number
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(first + broken)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its last answer
            answer += chunk
    assert re.findall(rb"HTTP/1.1 (\d{3}) ", answer) == [b"200", b"400"], answer[:400]
    assert answer.endswith(b'{"ok":false,"error":"Invalid HTTP request"}')
    assert total(http, queue) == (1 if ahead == "push" else 0)
