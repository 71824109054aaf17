"""The SDK stands alone: importing it loads none of the server, its blocking client is the generated twin of
the async one, and its shared pieces (push options, reply decoding, the retry policy) do what both rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bunq.sdk import (
    BadRequest,
    BunqError,
    NotFound,
    PushOptions,
    RateLimited,
    Retry,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
    _base,
)
from bunq.sdk.errors import for_status

ROOT = Path(__file__).resolve().parents[3]
SERVER_MODULES = ("zmq", "apsw", "uvicorn", "starlette")
# the push fields of the spec's "Push a Job" table, besides `data`
SPEC_PUSH_FIELDS = {
    "priority", "delay", "maxAttempts", "backoff", "ttl", "timeout", "uniqueKey", "jobId", "tags", "groupId",
    "lifo", "removeOnComplete", "removeOnFail", "durable", "dependsOn", "repeat",
}  # fmt: skip


# -- isolation and generation ----------------------------------------------------------------------------


def test_importing_the_sdk_loads_none_of_the_server() -> None:
    probe = (
        "import sys, bunq.sdk\n"
        "from bunq.sdk import Client, AsyncClient, Worker\n"
        f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({SERVER_MODULES!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_sdk_is_typed() -> None:
    assert (ROOT / "bunq" / "py.typed").exists()


def test_the_generated_sync_client_is_up_to_date() -> None:
    check = [sys.executable, str(ROOT / "scripts" / "gen_sync_client"), "--check"]
    done = subprocess.run(check, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_sync_client_has_every_method_of_the_async_one() -> None:
    from bunq.sdk import AsyncClient, Client

    def public(cls: type) -> set[str]:
        return {name for name in vars(cls) if not name.startswith("_")}

    assert public(Client) == (public(AsyncClient) - {"aclose"}) | {"close"}


# -- push bodies -----------------------------------------------------------------------------------------


def test_every_push_option_has_its_wire_name() -> None:
    assert set(_base.WIRE_NAMES) == set(PushOptions.__annotations__)
    assert SPEC_PUSH_FIELDS <= set(_base.WIRE_NAMES.values())


def test_job_body_uses_the_spec_names_and_leaves_out_unset_options() -> None:
    options: PushOptions = {
        "priority": 5,
        "max_attempts": 2,
        "unique_key": "k",
        "job_id": "order-1",
        "group_id": "g",
        "remove_on_complete": True,
        "remove_on_fail": False,
        "depends_on": ["a"],
        "delay": 0,
    }
    assert _base.job_body({"x": 1}, options) == {
        "data": {"x": 1},
        "priority": 5,
        "maxAttempts": 2,
        "uniqueKey": "k",
        "jobId": "order-1",
        "groupId": "g",
        "removeOnComplete": True,
        "removeOnFail": False,
        "dependsOn": ["a"],
        "delay": 0,
    }
    assert _base.job_body(None, {"ttl": None}) == {"data": None}  # None is "not given"; falsy values are sent


def test_bulk_items_take_either_spelling_and_need_data() -> None:
    assert _base.bulk_item({"data": 1, "max_attempts": 2}) == {"data": 1, "maxAttempts": 2}
    assert _base.bulk_item({"data": 1, "maxAttempts": 2}) == {"data": 1, "maxAttempts": 2}
    assert _base.bulk_item({"data": None}) == {"data": None}
    with pytest.raises(TypeError):
        _base.bulk_item({"priority": 1})
    with pytest.raises(TypeError):
        _base.bulk_item("data")


def test_query_path_segments_and_headers() -> None:
    assert _base.query(None) == "" and _base.query({"a": None}) == ""
    assert _base.query({"state": "waiting", "limit": 10, "offset": None}) == "?state=waiting&limit=10"
    assert _base.segment("a/b c?#") == "a%2Fb%20c%3F%23"
    assert _base.headers("t", json=True)["authorization"] == "Bearer t"
    assert _base.headers("t", json=True)["content-type"] == "application/json"
    assert "authorization" not in _base.headers(None, json=False)
    assert "content-type" not in _base.headers(None, json=False)


# -- replies ---------------------------------------------------------------------------------------------


def test_a_success_reply_is_its_body() -> None:
    assert _base.reply(200, b'{"ok":true,"id":"1"}') == {"ok": True, "id": "1"}
    assert _base.reply(200, b"") == {}


def test_a_refusal_raises_the_exception_of_its_status_with_the_servers_error() -> None:
    with pytest.raises(NotFound) as found:
        _base.reply(404, b'{"ok":false,"error":"Job not found"}')
    assert (found.value.error, found.value.status) == ("Job not found", 404)
    assert found.value.body == {"ok": False, "error": "Job not found"}
    with pytest.raises(BunqError) as refused_in_200:
        _base.reply(200, b'{"ok":false,"error":"nope"}')  # `ok` decides, whatever the status
    assert refused_in_200.value.error == "nope"
    with pytest.raises(ServerError) as not_json:
        _base.reply(502, b"<html>Bad Gateway</html>")
    assert not_json.value.error == "<html>Bad Gateway</html>" and not_json.value.status == 502


def test_a_batch_refusal_listing_the_failed_ids_is_a_partial_success() -> None:
    body = b'{"ok":false,"count":1,"failed":{"x":"Job not found"}}'
    assert _base.reply(400, body, batch=True)["failed"] == {"x": "Job not found"}
    with pytest.raises(BadRequest):
        _base.reply(400, body)
    with pytest.raises(BadRequest):
        _base.reply(400, b'{"ok":false,"error":"ids must be an array"}', batch=True)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (404, NotFound),
        (429, RateLimited),
        (500, ServerError),
        (502, ServerError),
        (503, Unavailable),
        (418, BunqError),
    ],
)
def test_each_status_has_its_exception(status: int, kind: type[BunqError]) -> None:
    error = for_status(status, "why")
    assert type(error) is kind and error.status == status and error.error == "why"
    assert str(error) == f"why (HTTP {status})"


def test_unavailable_is_a_server_error() -> None:
    assert issubclass(Unavailable, ServerError) and issubclass(TransportError, BunqError)


# -- the retry policy ------------------------------------------------------------------------------------

RATE_LIMITED = RateLimited("Rate limit exceeded", 429)
UNAVAILABLE = Unavailable("Shard unavailable", 503)
BROKEN = TransportError("ReadError")
NOT_FOUND = NotFound("Job not found", 404)
FAILED = ServerError("boom", 500)


@pytest.mark.parametrize("safe", [True, False])
def test_a_429_is_always_retried(safe: bool) -> None:
    assert Retry().delay(0, RATE_LIMITED, safe=safe, sent=True, retry_after=None) is not None


def test_a_503_is_retried_only_when_the_call_is_safe() -> None:
    assert Retry().delay(0, UNAVAILABLE, safe=True, sent=True, retry_after=None) is not None
    assert Retry().delay(0, UNAVAILABLE, safe=False, sent=True, retry_after=None) is None


def test_a_broken_connection_is_retried_only_when_the_call_is_safe() -> None:
    assert Retry().delay(0, BROKEN, safe=True, sent=True, retry_after=None) is not None
    assert Retry().delay(0, BROKEN, safe=False, sent=True, retry_after=None) is None


@pytest.mark.parametrize("safe", [True, False])
def test_a_refused_connection_is_always_retried(safe: bool) -> None:
    refused = TransportError("ConnectError: [Errno 111] Connection refused")
    assert Retry().delay(0, refused, safe=safe, sent=False, retry_after=None) is not None


@pytest.mark.parametrize("error", [NOT_FOUND, FAILED, BadRequest("bad", 400), Unauthorized("Unauthorized", 401)])
def test_other_refusals_are_not_retried(error: BunqError) -> None:
    assert Retry().delay(0, error, safe=True, sent=True, retry_after=None) is None


def test_it_gives_up_after_its_attempts() -> None:
    retry = Retry(attempts=3)
    assert retry.delay(0, RATE_LIMITED, safe=True, sent=True, retry_after=None) is not None
    assert retry.delay(1, RATE_LIMITED, safe=True, sent=True, retry_after=None) is not None
    assert retry.delay(2, RATE_LIMITED, safe=True, sent=True, retry_after=None) is None
    assert Retry(attempts=1).delay(0, RATE_LIMITED, safe=True, sent=False, retry_after=None) is None


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    retry = Retry(attempts=20, base_s=0.1, cap_s=1.0)
    for attempt, full in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (10, 1.0)]:
        waits = [retry.delay(attempt, UNAVAILABLE, safe=True, sent=True, retry_after=None) for _ in range(50)]
        assert all(w is not None and full / 2 <= w <= full for w in waits), (attempt, waits)
        assert len(set(waits)) > 1  # jittered


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    retry = Retry(attempts=5, base_s=0.1, cap_s=3.0)
    assert retry.delay(0, RATE_LIMITED, safe=False, sent=True, retry_after="2") == 2.0
    assert retry.delay(0, RATE_LIMITED, safe=False, sent=True, retry_after="60") == 3.0
    assert retry.delay(0, RATE_LIMITED, safe=False, sent=True, retry_after="0") == 0.0
    odd = retry.delay(0, RATE_LIMITED, safe=False, sent=True, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    assert odd is not None and 0.05 <= odd <= 0.1  # not a number of seconds: the backoff instead
