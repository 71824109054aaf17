"""Webhooks: the registry, and deliveries of job events that never hold up the job path.

Registration checks only the URL's face (`ssrf.check_url`, no DNS). A delivery is a POST of `{event,
jobId, queue, timestamp, data | error | progress}`, with the reference's `X-Webhook-Event` and
`X-Webhook-Timestamp` (the payload's, in ms) headers, to an address the host resolved to on that very attempt, every
address checked (`ssrf.resolve`), no redirects followed; a refused target is a failed attempt like any
other. It is signed when the webhook has a secret: `X-Webhook-Signature` (hex HMAC-SHA256 of the body,
as the reference) and the Standard Webhooks headers (`webhook-id` stable across retries,
`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`; a secret
written `whsec_<base64>` is used decoded). A failed attempt is retried 3 times, after 1 s, 2 s and 4 s,
unless the webhook was disabled or removed meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from bunq.aggregator import ssrf
from bunq.aggregator.store import Records, RegistryStore
from bunq.clock import Clock, wall_ms
from bunq.errors import BadRequest, BunqError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("bunq.webhooks")
counters: collections.Counter[str] = collections.Counter()  # of this aggregator process

KIND = "webhook"
EVENTS = ("pushed", "started", "completed", "failed", "progress")
TOPIC_EVENT = {
    "job:pushed": "pushed",
    "job:active": "started",
    "job:completed": "completed",
    "job:failed": "failed",
    "job:progress": "progress",
}
RETRY_DELAYS_S = (1.0, 2.0, 4.0)
MAX_IN_FLIGHT = 10_000
MAX_IN_FLIGHT_BYTES = 64 * 2**20  # of their bodies: a receiver that never answers holds each for 4 attempts

Publish = Callable[[str, dict[str, Any]], None]
Sleep = Callable[[float], Awaitable[None]]


class Webhook(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    queue: str | None = None
    secret: str | None = None
    enabled: bool = True
    created_at: int = 0
    last_triggered: int | None = None
    success_count: int = 0
    failure_count: int = 0

    def named(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A delivery event's payload: the webhook as the spec names it (`id`) and as the reference does
        (`webhookId`, `url`), then `fields`."""
        return {"id": self.id, "webhookId": self.id, "url": self.url, **fields}

    def wants(self, event: str, queue: str | None) -> bool:
        return self.enabled and event in normalized(self.events) and (self.queue is None or self.queue == queue)


def normalized(events: list[str]) -> set[str]:
    return {e.removeprefix("job.") for e in events}


def check_events(events: list[str]) -> None:
    bad = [e for e in events if e.removeprefix("job.") not in EVENTS]
    if bad or not events:
        valid = ", ".join(EVENTS + tuple(f"job.{e}" for e in EVENTS))
        raise BadRequest(f"Invalid webhook event(s): {', '.join(bad) or '(none)'}. Valid: {valid}")


def payload(event: str, data: dict[str, Any], timestamp: Any) -> dict[str, Any]:
    """What a delivery of a job event posts: `{event, jobId, queue, timestamp}` and, as the event has
    them, the result as `data`, the `error`, the `progress`."""
    body = {"event": f"job.{event}", "jobId": data.get("jobId"), "queue": data.get("queue"), "timestamp": timestamp}
    if "result" in data:
        body["data"] = data["result"]
    if data.get("error") is not None:
        body["error"] = data["error"]
    if "progress" in data:
        body["progress"] = data["progress"]
    return body


def signing_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks signature: a `whsec_<base64>` secret decoded, any other as
    written (a `whsec_` one that is not base64 too, counted in `counters["secretsNotBase64"]`)."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :])
        except ValueError:
            counters["secretsNotBase64"] += 1
            log.debug("a whsec_ webhook secret is not base64; signing with it as written")
    return secret.encode()


def signature_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    legacy = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    signed = f"{message_id}.{timestamp}.".encode() + body
    standard = base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()
    return {"X-Webhook-Signature": legacy, "webhook-signature": f"v1,{standard}"}


class Webhooks:
    def __init__(
        self,
        store: RegistryStore,
        publish: Publish,
        allow: tuple[str, ...],
        timeout_s: float,
        *,
        resolver: ssrf.Resolver = ssrf.system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = wall_ms,
    ) -> None:
        self.publish = publish
        self.allow = ssrf.AllowList(allow)
        self.timeout_s = timeout_s
        self.resolver = resolver
        self.sleep = sleep
        self.clock = clock  # created and last-delivered times (a signature's timestamp is always real time)
        self.records = Records(store, KIND, Webhook, lambda hook: hook.id, "Webhook not found")
        self.hooks = self.records.items  # read-only: the records write it
        self.transport = transport
        self._client: httpx.AsyncClient | None = None
        self.in_flight: set[asyncio.Task[None]] = set()
        self.in_flight_bytes = 0

    async def add(self, url: str, events: list[str], queue: str | None, secret: str | None) -> Webhook:
        check_events(events)
        ssrf.check_url(url, self.allow)  # no DNS here: a name is looked up, and checked, on every attempt
        hook = Webhook(str(uuid.uuid4()), url, events, queue, secret, created_at=self.clock())
        self.records.save(hook)
        self.publish("webhook:added", {"id": hook.id, "url": url, "events": events})
        return hook

    def get(self, hook_id: str) -> Webhook:
        return self.records.get(hook_id)

    def remove(self, hook_id: str) -> None:
        self.get(hook_id)
        self.records.delete(hook_id)
        self.publish("webhook:removed", {"id": hook_id})

    def set_enabled(self, hook_id: str, enabled: bool) -> Webhook:
        hook = self.get(hook_id)
        hook.enabled = enabled
        self.records.save(hook)
        return hook

    def topics(self) -> set[str]:
        """The shard event topics some enabled webhook needs."""
        wanted = {e for hook in self.hooks.values() if hook.enabled for e in normalized(hook.events)}
        return {topic for topic, event in TOPIC_EVENT.items() if event in wanted}

    def on_event(self, topic: str, envelope: dict[str, Any]) -> None:
        event = TOPIC_EVENT.get(topic)
        if event is None:
            return
        data = envelope.get("data", {})
        queue = data.get("queue")
        body: bytes | None = None
        for hook in self.hooks.values():
            if not hook.wants(event, queue):
                continue
            if body is None:
                body = msgspec.json.encode(payload(event, data, envelope.get("ts")))
            if len(self.in_flight) >= MAX_IN_FLIGHT or self.in_flight_bytes + len(body) > MAX_IN_FLIGHT_BYTES:
                self.publish("webhook:failed", hook.named({"event": f"job.{event}", "error": "delivery backlog full"}))
                continue
            self.in_flight_bytes += len(body)
            task = asyncio.create_task(self.deliver(hook, event, body, envelope.get("ts")))
            self.in_flight.add(task)
            task.add_done_callback(functools.partial(self._delivered, len(body)))

    def _delivered(self, size: int, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.in_flight_bytes -= size

    async def deliver(self, hook: Webhook, event: str, body: bytes, timestamp: Any) -> None:
        # as the reference sends them: the event and the payload's timestamp (ms), for receivers that
        # route on headers before reading the body
        reference = {"X-Webhook-Event": f"job.{event}", "X-Webhook-Timestamp": str(timestamp)}
        message_id = f"msg_{uuid.uuid4().hex}"
        error = "not attempted"
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            if attempt:
                await self.sleep(RETRY_DELAYS_S[attempt - 1])
                current = self.hooks.get(hook.id)
                if current is None or not current.enabled:
                    return  # disabled or removed meanwhile: it receives nothing more, retries included
            try:
                status = await self.attempt(hook, message_id, body, reference)
            except (BunqError, _http_error(), OSError) as exc:
                error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                continue
            if 200 <= status < 300:
                hook.success_count += 1
                hook.last_triggered = self.clock()
                self.publish("webhook:fired", hook.named({"event": f"job.{event}", "statusCode": status}))
                return
            error = f"HTTP {status}"
        hook.failure_count += 1
        self.publish("webhook:failed", hook.named({"event": f"job.{event}", "error": error}))

    async def attempt(self, hook: Webhook, message_id: str, body: bytes, extra: dict[str, str]) -> int:
        target = await ssrf.resolve(hook.url, self.allow, self.resolver, self.timeout_s)
        timestamp = int(time.time())
        headers = {
            "Host": target.authority(),
            "Content-Type": "application/json",
            "User-Agent": "bunq-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            **extra,
        }
        if hook.secret:
            headers.update(signature_headers(hook.secret, message_id, timestamp, body))
        # the connection goes to the checked address; TLS still names (and verifies) the host
        extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.named else {}
        # the status is all a delivery needs: the body is never read (a receiver streaming one forever
        # grew the aggregator by all of it), and the whole attempt has one deadline (httpx's timeout
        # bounds each read, so a head dribbled a byte at a time held the attempt without end)
        try:
            async with asyncio.timeout(self.timeout_s):
                request = self.client().stream(
                    "POST", target.url(), content=body, headers=headers, extensions=extensions
                )
                async with request as response:
                    return response.status_code
        except TimeoutError:
            raise BadRequest(f"Webhook delivery timed out after {round(self.timeout_s * 1000)} ms") from None

    async def close(self) -> None:
        for task in list(self.in_flight):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def client(self) -> httpx.AsyncClient:
        """The HTTP client, made (and httpx imported, ~10 MB) at the first delivery, not in every aggregator."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                follow_redirects=False, timeout=self.timeout_s, trust_env=False, transport=self.transport
            )
        return self._client


def _http_error() -> type[Exception]:
    import httpx

    return httpx.HTTPError
