"""`Client`: every operation of the bunq HTTP API as a blocking method, the twin of `AsyncClient`.

Generated from bunq/sdk/aio.py by scripts/gen_sync_client: do not edit; edit aio.py and run the script.

Durations sent to the server (delays, timeouts of long polls, lock TTLs) are milliseconds, as in the spec;
the client's own `timeout` is seconds, as in httpx.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any, Unpack

import httpx
import msgspec

from bunq.sdk import _base
from bunq.sdk._base import PushOptions, Retry, segment
from bunq.sdk.errors import BunqError, TransportError
from bunq.sdk.events import EventStream
from bunq.sdk.models import (
    BatchResult,
    Counts,
    Cron,
    DlqConfig,
    DlqEntry,
    Event,
    Job,
    Lease,
    LogEntry,
    Progress,
    StallConfig,
    WaitResult,
    Webhook,
    WorkerInfo,
)


class Client:
    """A connection pool to one bunq server. Use it as `with Client(url) as bunq:` or call
    `close()` when done."""

    def __init__(
        self,
        url: str = _base.DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        retry: Retry | None = None,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry = retry or Retry()
        # parsed once: building a request from a URL string and a dict cost 23 µs, from these 9
        self._headers = httpx.Headers(_base.headers(token, json=False))
        self._json_headers = httpx.Headers(_base.headers(token, json=True))
        self._urls: dict[str, httpx.URL] = {}
        # requests go straight to httpx's transport: the client layer (URL merging, cookies, auth and redirect
        # handling) doubled the CPU a call costs and bunq needs none of it
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport or httpx.HTTPTransport(limits=limits)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        *,
        safe: bool = False,
        wait_ms: int = 0,
        batch: bool = False,
    ) -> dict[str, Any]:
        """One call: its decoded reply, or the exception for the server's refusal. `safe` calls may be sent
        again after a 503 or a broken connection; `wait_ms` is how long the server may hold it (long polls)."""
        content = None if body is None else _base.encode(body)
        headers = self._headers if content is None else self._json_headers
        url = self._url(path + _base.query(params))
        extensions = {"timeout": _base.timeouts(self.timeout + wait_ms / 1000)}
        attempt = 0
        while True:
            retry_after = None
            sent = True
            try:
                request = httpx.Request(method, url, content=content, headers=headers, extensions=extensions)
                response = self._transport.handle_request(request)
                try:
                    reply = response.read()
                finally:
                    response.close()
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError)
                error: BunqError = TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                try:
                    return _base.reply(response.status_code, reply, batch)
                except BunqError as exc:
                    error = exc
                    retry_after = response.headers.get("retry-after")
            delay = self.retry.delay(attempt, error, safe, sent, retry_after)
            if delay is None:
                raise error
            attempt += 1
            time.sleep(delay)

    def _url(self, target: str) -> httpx.URL:
        """The parsed URL of a path and query: a worker's few hot ones are parsed once. At most `URL_CACHE`
        are kept (then it starts afresh), so a client that touches many jobs does not grow."""
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) >= _base.URL_CACHE:
                self._urls.clear()
            url = self._urls[target] = httpx.URL(self.url + target)
        return url

    # -- jobs: push and pull --------------------------------------------------------------------------------

    def push(self, queue: str, data: Any = None, **options: Unpack[PushOptions]) -> str:
        """Push one job; its id (the existing job's id when `job_id` names one already there)."""
        body = _base.job_body(data, options)
        reply = self.request("POST", f"/queues/{segment(queue)}/jobs", body, safe="job_id" in options)
        return str(reply["id"])

    def push_bulk(self, queue: str, jobs: Iterable[dict[str, Any]]) -> list[str]:
        """Push jobs atomically (all or none); their ids in order. Each is `{"data": ..., **options}`."""
        body = {"jobs": [_base.bulk_item(job) for job in jobs]}
        reply = self.request("POST", f"/queues/{segment(queue)}/jobs/bulk", body)
        return [str(i) for i in reply["ids"]]

    def pull(
        self, queue: str, timeout: int = 0, *, owner: str | None = None, lock_ttl: int | None = None
    ) -> Lease | None:
        """Take the next job (waiting up to `timeout` ms for one); None when there is none."""
        leases = self.pull_batch(queue, 1, timeout, owner=owner, lock_ttl=lock_ttl)
        return leases[0] if leases else None

    def pull_batch(
        self, queue: str, count: int, timeout: int = 0, *, owner: str | None = None, lock_ttl: int | None = None
    ) -> list[Lease]:
        """Take up to `count` jobs, waiting up to `timeout` ms for the first. With `owner`, each comes with
        the lock token its ack, fail and heartbeats must carry."""
        body: dict[str, Any] = {"count": count, "timeout": timeout}
        if owner is not None:
            body["owner"] = owner
        if lock_ttl is not None:
            body["lockTtl"] = lock_ttl
        reply = self.request("POST", f"/queues/{segment(queue)}/jobs/pull-batch", body, wait_ms=timeout)
        jobs = _base.convert(reply.get("jobs") or [], list[Job])
        tokens = reply.get("tokens") or []
        return [Lease(job, tokens[i] if i < len(tokens) else None) for i, job in enumerate(jobs)]

    # -- jobs: outcome ---------------------------------------------------------------------------------------

    def ack(self, job_id: str, result: Any = None, *, token: str | None = None) -> None:
        """Complete an active job, storing `result`."""
        body: dict[str, Any] = {"result": result}
        if token is not None:
            body["token"] = token
        self.request("POST", f"/jobs/{segment(job_id)}/ack", body)

    def ack_batch(
        self, ids: list[str], results: list[Any] | None = None, tokens: list[str | None] | None = None
    ) -> BatchResult:
        """Complete many jobs; how many were, and why each other one was refused (`failed`)."""
        body: dict[str, Any] = {"ids": ids}
        if results is not None:
            body["results"] = results
        if tokens is not None:
            body["tokens"] = tokens
        return _base.convert(self.request("POST", "/jobs/ack-batch", body, batch=True), BatchResult)

    def fail(self, job_id: str, error: str | None = None, *, token: str | None = None) -> None:
        """Fail an active job: retried after its backoff while attempts remain, then into the DLQ."""
        body: dict[str, Any] = {}
        if error is not None:
            body["error"] = error
        if token is not None:
            body["token"] = token
        self.request("POST", f"/jobs/{segment(job_id)}/fail", body)

    def heartbeat(self, job_id: str, *, token: str | None = None, duration: int | None = None) -> None:
        """Tell the stall detector the job is alive; with `duration`, extend its lock that long (ms)."""
        body: dict[str, Any] = {}
        if token is not None:
            body["token"] = token
        if duration is not None:
            body["duration"] = duration
        self.request("POST", f"/jobs/{segment(job_id)}/heartbeat", body)

    def heartbeat_batch(
        self, ids: list[str], tokens: list[str | None] | None = None, durations: list[int] | None = None
    ) -> BatchResult:
        """Heartbeat (and with `durations`, extend the locks of) many jobs at once."""
        body: dict[str, Any] = {"ids": ids}
        if tokens is not None:
            body["tokens"] = tokens
        if durations is not None:
            body["durations"] = durations
        return _base.convert(self.request("POST", "/jobs/heartbeat-batch", body, batch=True), BatchResult)

    # -- jobs: look and change -------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        reply = self.request("GET", f"/jobs/{segment(job_id)}", safe=True)
        return _base.convert(reply["job"], Job)

    def get_job_by_custom_id(self, custom_id: str) -> Job:
        reply = self.request("GET", f"/jobs/custom/{segment(custom_id)}", safe=True)
        return _base.convert(reply["job"], Job)

    def get_state(self, job_id: str) -> str:
        """waiting, prioritized, delayed, active, completed, failed, waiting-children or unknown."""
        return str((self.request("GET", f"/jobs/{segment(job_id)}/state", safe=True))["state"])

    def get_result(self, job_id: str) -> Any:
        return (self.request("GET", f"/jobs/{segment(job_id)}/result", safe=True)).get("result")

    def wait(self, job_id: str, timeout: int = 30_000) -> WaitResult:
        """Wait up to `timeout` ms for the job to complete."""
        path = f"/jobs/{segment(job_id)}/wait"
        reply = self.request("POST", path, {"timeout": timeout}, safe=True, wait_ms=timeout)
        return _base.convert(reply, WaitResult)

    def cancel(self, job_id: str) -> None:
        """Remove a waiting, delayed or active job."""
        self.request("DELETE", f"/jobs/{segment(job_id)}", safe=True)

    def get_progress(self, job_id: str) -> Progress:
        return _base.convert(self.request("GET", f"/jobs/{segment(job_id)}/progress", safe=True), Progress)

    def progress(self, job_id: str, progress: float, message: str | None = None, *, token: str | None = None) -> None:
        """Report an active job's progress (0-100); `token`, a job's lease token, is checked when given."""
        body: dict[str, Any] = {"progress": progress}
        if message is not None:
            body["message"] = message
        if token is not None:
            body["token"] = token
        self.request("POST", f"/jobs/{segment(job_id)}/progress", body, safe=True)

    def get_logs(self, job_id: str) -> list[LogEntry]:
        reply = self.request("GET", f"/jobs/{segment(job_id)}/logs", safe=True)
        return _base.convert(reply.get("logs") or [], list[LogEntry])

    def log(self, job_id: str, message: str, level: str = "info") -> None:
        """Add a log line (`info`, `warn` or `error`) to a job."""
        self.request("POST", f"/jobs/{segment(job_id)}/logs", {"message": message, "level": level})

    def clear_logs(self, job_id: str) -> None:
        self.request("DELETE", f"/jobs/{segment(job_id)}/logs", safe=True)

    def get_children(self, job_id: str) -> dict[str, Any]:
        """The results of the jobs this one depends on, by id."""
        reply = self.request("GET", f"/jobs/{segment(job_id)}/children", safe=True)
        values: dict[str, Any] = reply.get("values") or {}
        return values

    def update_data(self, job_id: str, data: Any) -> None:
        self.request("PUT", f"/jobs/{segment(job_id)}/data", {"data": data}, safe=True)

    def update_priority(self, job_id: str, priority: int) -> None:
        self.request("PUT", f"/jobs/{segment(job_id)}/priority", {"priority": priority}, safe=True)

    def update_delay(self, job_id: str, delay: int) -> None:
        """Set a delayed job, or a waiting one, to run `delay` ms from now (an active job: `move_to_delayed`)."""
        self.request("PUT", f"/jobs/{segment(job_id)}/delay", {"delay": delay}, safe=True)

    def promote(self, job_id: str) -> None:
        """Make a delayed job waiting now."""
        self.request("POST", f"/jobs/{segment(job_id)}/promote", {})

    def move_to_delayed(self, job_id: str, delay: int, *, token: str | None = None) -> None:
        """Put an active job back, to run again `delay` ms from now (with its lease `token` if it has one)."""
        body: dict[str, Any] = {"delay": delay}
        if token is not None:
            body["token"] = token
        self.request("POST", f"/jobs/{segment(job_id)}/move-to-delayed", body)

    def discard(self, job_id: str, *, token: str | None = None) -> None:
        """Send a job straight to its queue's DLQ (an active one pulled with an `owner`: with its lease `token`)."""
        body = {} if token is None else {"token": token}
        self.request("POST", f"/jobs/{segment(job_id)}/discard", body)

    # -- queues ----------------------------------------------------------------------------------------------

    def queues(self) -> list[str]:
        return [str(q) for q in (self.request("GET", "/queues", safe=True))["queues"]]

    def list_jobs(self, queue: str, state: str | None = None, limit: int | None = None, offset: int = 0) -> list[Job]:
        """A page of a queue's jobs, optionally in one state (waiting, delayed, active, ...)."""
        params = {"state": state, "limit": limit, "offset": offset or None}
        reply = self.request("GET", f"/queues/{segment(queue)}/jobs/list", params=params, safe=True)
        return _base.convert(reply.get("jobs") or [], list[Job])

    def counts(self, queue: str) -> Counts:
        reply = self.request("GET", f"/queues/{segment(queue)}/counts", safe=True)
        return _base.convert(reply["counts"], Counts)

    def count(self, queue: str) -> int:
        """The queue's jobs still to finish: waiting, delayed, active and waiting for children."""
        return int((self.request("GET", f"/queues/{segment(queue)}/count", safe=True))["count"])

    def priority_counts(self, queue: str) -> dict[int, int]:
        reply = self.request("GET", f"/queues/{segment(queue)}/priority-counts", safe=True)
        return {int(k): int(n) for k, n in (reply.get("counts") or {}).items()}

    def is_paused(self, queue: str) -> bool:
        return bool((self.request("GET", f"/queues/{segment(queue)}/paused", safe=True))["paused"])

    def pause(self, queue: str) -> None:
        self.request("POST", f"/queues/{segment(queue)}/pause", {}, safe=True)

    def resume(self, queue: str) -> None:
        self.request("POST", f"/queues/{segment(queue)}/resume", {}, safe=True)

    def drain(self, queue: str) -> int:
        """Remove every waiting and delayed job; how many."""
        return int((self.request("POST", f"/queues/{segment(queue)}/drain", {}))["count"])

    def obliterate(self, queue: str) -> None:
        """Remove the queue and everything in it."""
        self.request("POST", f"/queues/{segment(queue)}/obliterate", {}, safe=True)

    def clean(self, queue: str, grace: int = 0, state: str | None = None, limit: int | None = None) -> int:
        """Remove jobs older than `grace` ms (in `state`, at most `limit`); how many."""
        body: dict[str, Any] = {"grace": grace}
        if state is not None:
            body["state"] = state
        if limit is not None:
            body["limit"] = limit
        return int((self.request("POST", f"/queues/{segment(queue)}/clean", body))["count"])

    def promote_jobs(self, queue: str, count: int | None = None) -> int:
        body = {} if count is None else {"count": count}
        return int((self.request("POST", f"/queues/{segment(queue)}/promote-jobs", body))["count"])

    def retry_completed(self, queue: str, job_id: str | None = None) -> int:
        body = {} if job_id is None else {"id": job_id}
        return int((self.request("POST", f"/queues/{segment(queue)}/retry-completed", body))["count"])

    def set_rate_limit(self, queue: str, limit: int) -> None:
        self.request("PUT", f"/queues/{segment(queue)}/rate-limit", {"limit": limit}, safe=True)

    def clear_rate_limit(self, queue: str) -> None:
        self.request("DELETE", f"/queues/{segment(queue)}/rate-limit", safe=True)

    def set_concurrency(self, queue: str, limit: int) -> None:
        self.request("PUT", f"/queues/{segment(queue)}/concurrency", {"limit": limit}, safe=True)

    def clear_concurrency(self, queue: str) -> None:
        self.request("DELETE", f"/queues/{segment(queue)}/concurrency", safe=True)

    def stall_config(self, queue: str) -> StallConfig:
        reply = self.request("GET", f"/queues/{segment(queue)}/stall-config", safe=True)
        return _base.convert(reply["config"], StallConfig)

    def set_stall_config(self, queue: str, config: StallConfig) -> StallConfig:
        body = {"config": msgspec.to_builtins(config)}
        reply = self.request("PUT", f"/queues/{segment(queue)}/stall-config", body, safe=True)
        return _base.convert(reply.get("config") or body["config"], StallConfig)

    # -- dead letter queue -----------------------------------------------------------------------------------

    def dlq(self, queue: str, count: int = 100) -> list[DlqEntry]:
        reply = self.request("GET", f"/queues/{segment(queue)}/dlq", params={"count": count}, safe=True)
        return _base.convert(reply.get("jobs") or [], list[DlqEntry])

    def retry_dlq(self, queue: str, job_id: str | None = None) -> int:
        """Send one DLQ entry (or all) back to waiting, attempts reset; how many."""
        body = {} if job_id is None else {"jobId": job_id}
        return int((self.request("POST", f"/queues/{segment(queue)}/dlq/retry", body))["count"])

    def purge_dlq(self, queue: str) -> int:
        return int((self.request("POST", f"/queues/{segment(queue)}/dlq/purge", {}))["count"])

    def dlq_config(self, queue: str) -> DlqConfig:
        reply = self.request("GET", f"/queues/{segment(queue)}/dlq-config", safe=True)
        return _base.convert(reply["config"], DlqConfig)

    def set_dlq_config(self, queue: str, config: DlqConfig) -> DlqConfig:
        body = {"config": msgspec.to_builtins(config)}
        reply = self.request("PUT", f"/queues/{segment(queue)}/dlq-config", body, safe=True)
        return _base.convert(reply.get("config") or body["config"], DlqConfig)

    # -- crons, webhooks, workers ----------------------------------------------------------------------------

    def crons(self) -> list[Cron]:
        return _base.convert((self.request("GET", "/crons", safe=True)).get("crons") or [], list[Cron])

    def add_cron(
        self,
        name: str,
        queue: str,
        data: Any = None,
        *,
        schedule: str | None = None,
        repeat_every: int | None = None,
        timezone: str | None = None,
        priority: int | None = None,
        max_limit: int | None = None,
    ) -> Cron:
        """Add (or, under a name in use, replace) a cron: a cron `schedule` or `repeat_every` ms."""
        fields = {"schedule": schedule, "repeatEvery": repeat_every, "timezone": timezone}
        fields |= {"priority": priority, "maxLimit": max_limit}
        body = {"name": name, "queue": queue, "data": data} | {k: v for k, v in fields.items() if v is not None}
        return _base.convert((self.request("POST", "/crons", body, safe=True))["cron"], Cron)

    def get_cron(self, name: str) -> Cron:
        return _base.convert((self.request("GET", f"/crons/{segment(name)}", safe=True))["cron"], Cron)

    def delete_cron(self, name: str) -> None:
        self.request("DELETE", f"/crons/{segment(name)}", safe=True)

    def webhooks(self) -> list[Webhook]:
        reply = self.request("GET", "/webhooks", safe=True)
        return _base.convert((reply.get("data") or {}).get("webhooks") or [], list[Webhook])

    def add_webhook(
        self, url: str, events: list[str], *, queue: str | None = None, secret: str | None = None
    ) -> Webhook:
        """Call `url` on these events (completed, failed, pushed, started); signed when `secret` is given."""
        body: dict[str, Any] = {"url": url, "events": events}
        if queue is not None:
            body["queue"] = queue
        if secret is not None:
            body["secret"] = secret
        data = dict((self.request("POST", "/webhooks", body))["data"])
        data.setdefault("id", data.pop("webhookId", None))
        return _base.convert(data, Webhook)

    def delete_webhook(self, webhook_id: str) -> None:
        self.request("DELETE", f"/webhooks/{segment(webhook_id)}", safe=True)

    def set_webhook_enabled(self, webhook_id: str, enabled: bool) -> None:
        self.request("PUT", f"/webhooks/{segment(webhook_id)}/enabled", {"enabled": enabled}, safe=True)

    def workers(self) -> list[WorkerInfo]:
        reply = self.request("GET", "/workers", safe=True)
        return _base.convert((reply.get("data") or {}).get("workers") or [], list[WorkerInfo])

    def register_worker(
        self,
        name: str,
        queues: list[str],
        *,
        concurrency: int = 1,
        hostname: str | None = None,
        pid: int | None = None,
    ) -> WorkerInfo:
        body: dict[str, Any] = {"name": name, "queues": queues, "concurrency": concurrency}
        if hostname is not None:
            body["hostname"] = hostname
        if pid is not None:
            body["pid"] = pid
        return _base.convert((self.request("POST", "/workers", body))["data"], WorkerInfo)

    def unregister_worker(self, worker_id: str) -> None:
        self.request("DELETE", f"/workers/{segment(worker_id)}", safe=True)

    def worker_heartbeat(self, worker_id: str) -> None:
        self.request("POST", f"/workers/{segment(worker_id)}/heartbeat", {}, safe=True)

    # -- monitoring ------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """`/health` as the server answers it (`status` is healthy or degraded)."""
        return self.request("GET", "/health", safe=True)

    def ping(self) -> bool:
        return bool((self.request("GET", "/ping", safe=True)).get("data", {}).get("pong"))

    def stats(self) -> dict[str, Any]:
        """`/stats`: totals per state, throughput counters, memory and collection sizes."""
        return self.request("GET", "/stats", safe=True)

    def metrics(self) -> dict[str, Any]:
        reply = self.request("GET", "/metrics", safe=True)
        metrics: dict[str, Any] = reply.get("metrics") or {}
        return metrics

    # -- events ----------------------------------------------------------------------------------------------

    def events(
        self, queue: str | None = None, names: Iterable[str] = ("*",), *, reconnect: bool = True
    ) -> Generator[Event, None, None]:
        """Events as they happen (names or wildcards: `job:completed`, `job:*`, `*`), from the WebSocket
        stream, optionally of one queue. A dropped connection is reopened (with backoff) unless `reconnect`
        is false; events while it was down are missed. `close()` it when done: that closes the connection."""
        stream = EventStream(self.url, self.token, queue, list(names))
        # the stream's own iterator is closed here, not left to the garbage collector, whose close of an async
        # generator is a task that the end of the event loop may cancel, leaking the socket
        events = stream.iter(reconnect)
        try:
            yield from events
        finally:
            events.close()
