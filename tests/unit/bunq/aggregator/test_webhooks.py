"""Webhook registration and delivery in-process: a faked resolver, httpx's MockTransport, no sleeps, no packets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bunq.aggregator import ssrf
from bunq.aggregator.store import RegistryStore
from bunq.aggregator.webhooks import Webhooks

BODY = b'{"event":"job.completed","timestamp":1700000000000}'


class Recorder:
    """The doubles around one Webhooks: resolver answers in turn, transport statuses in turn, slept delays."""

    def __init__(self, answers: list[list[str]], statuses: list[int] | None = None) -> None:
        self.answers = answers
        self.statuses = statuses or []
        self.looked_up: list[str] = []
        self.requests: list[httpx.Request] = []
        self.slept: list[float] = []
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def resolver(self, host: str, port: int) -> list[str]:
        self.looked_up.append(host)
        return self.answers[min(len(self.looked_up), len(self.answers)) - 1]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1] if self.statuses else 200
        return httpx.Response(status, headers={"Location": "http://169.254.169.254/"} if status == 302 else {})

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        self.published.append((topic, data))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RegistryStore]:
    store = RegistryStore(str(tmp_path / "aggregator.db"))
    yield store
    store.close()


def deliver(store: RegistryStore, recorder: Recorder, url: str, allow: tuple[str, ...] = ()) -> Webhooks:
    async def run() -> Webhooks:
        hooks = Webhooks(
            store,
            recorder.publish,
            allow,
            5.0,
            resolver=recorder.resolver,
            transport=httpx.MockTransport(recorder.handle),
            sleep=recorder.sleep,
        )
        hook = await hooks.add(url, ["completed"], None, None)
        await hooks.deliver(hook, "completed", BODY, 1700000000000)
        await hooks.close()
        return hooks

    return asyncio.run(run())


def test_registration_does_no_dns_and_accepts_a_name_that_does_not_resolve(store: RegistryStore) -> None:
    async def run() -> list[str]:
        async def no_dns(host: str, port: int) -> list[str]:
            raise AssertionError(f"looked up {host} at registration")

        published: list[str] = []
        hooks = Webhooks(store, lambda topic, data: published.append(topic), (), 5.0, resolver=no_dns)
        hook = await hooks.add("https://does-not-exist.invalid/hook", ["completed"], None, None)
        assert hooks.get(hook.id).url == "https://does-not-exist.invalid/hook"
        await hooks.close()
        return published

    assert asyncio.run(run()) == ["webhook:added"]


def test_a_name_resolving_to_an_internal_address_is_a_failed_attempt_and_nothing_is_sent(
    store: RegistryStore,
) -> None:
    recorder = Recorder([["10.0.0.1"]])
    hooks = deliver(store, recorder, "https://hooks.example.com/hook")
    assert recorder.requests == []
    assert recorder.looked_up == ["hooks.example.com"] * 4  # resolved again on every attempt
    assert recorder.slept == [1.0, 2.0, 4.0]  # retried like any failure
    error = (
        "Webhook URL cannot point to private IP"
        " (hooks.example.com resolves to 10.0.0.1; 10.0.0.1 is in 10.0.0.0/8, Private-Use)"
    )
    (hook,) = hooks.hooks.values()
    assert recorder.published[-1] == (
        "webhook:failed",
        {"id": hook.id, "webhookId": hook.id, "url": hook.url, "event": "job.completed", "error": error},
    )
    assert (hook.failure_count, hook.success_count) == (1, 0)


def test_a_name_rebound_to_an_internal_address_between_attempts_is_caught(store: RegistryStore) -> None:
    recorder = Recorder([["93.184.216.34"], ["192.0.0.192"]], statuses=[500])
    deliver(store, recorder, "http://hooks.example.com/hook")
    assert [str(r.url) for r in recorder.requests] == ["http://93.184.216.34/hook"]
    topic, data = recorder.published[-1]
    assert topic == "webhook:failed" and "192.0.0.192 is in 192.0.0.0/24, IETF Protocol Assignments)" in data["error"]


def test_delivery_connects_to_the_checked_address_with_the_name_in_host_and_sni(store: RegistryStore) -> None:
    recorder = Recorder([["93.184.216.34"]])
    hooks = deliver(store, recorder, "https://hooks.example.com:8443/in?x=1")
    (request,) = recorder.requests
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.content == BODY
    assert recorder.published[-1][0] == "webhook:fired"
    assert next(iter(hooks.hooks.values())).success_count == 1


def test_redirects_are_not_followed(store: RegistryStore) -> None:
    recorder = Recorder([["93.184.216.34"]], statuses=[302])
    deliver(store, recorder, "http://hooks.example.com/hook")
    assert {str(r.url) for r in recorder.requests} == {"http://93.184.216.34/hook"}
    assert recorder.published[-1][1]["error"] == "HTTP 302"


def test_the_allow_list_lets_a_trusted_name_through_at_delivery(store: RegistryStore) -> None:
    recorder = Recorder([["10.1.2.3"]])
    deliver(store, recorder, "http://hooks.internal:9000/hook", allow=("hooks.internal",))
    assert [str(r.url) for r in recorder.requests] == ["http://10.1.2.3:9000/hook"]
    assert recorder.requests[0].headers["Host"] == "hooks.internal:9000"


def test_allow_list_parsing_reads_names_and_ranges() -> None:
    allow = ssrf.AllowList([" 10.0.0.0/8 ", "Hooks.Internal.", "127.0.0.1"])
    assert allow.names == frozenset({"hooks.internal"})
    assert [str(n) for n in allow.networks] == ["10.0.0.0/8", "127.0.0.1/32"]
