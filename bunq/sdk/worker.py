"""`Worker`: runs a handler over a queue's jobs with a fixed number of slots.

How it keeps the slots busy without wasting requests:
- its pulls, acks, failures and lease heartbeats go over one WebSocket (`transport="websocket"`, the
  default; see `bunq.sdk.channel` and `bunq.sdk.jobcalls`), which costs it half the CPU per job of HTTP
  requests, and the server gives back at once whatever was pulled on it if that connection drops (the
  running jobs' acks then go over HTTP, and are refused where the jobs were given back);
  `transport="http"` (or a server that refuses the upgrade) sends them as HTTP requests instead;
- one pull is in flight at a time, for exactly as many jobs as there are free slots, and it waits in the
  server's long poll, never in a sleep; a slot that frees while it is out is filled by the next pull, which
  goes out at once, so under load every pull carries several jobs and the worker never holds more jobs than
  it has slots;
- completions are sent as `ack-batch`: at once when no ack is in flight, else together with the others that
  finish while it is out (a few milliseconds);
- it pulls with an `owner` (its registry id) and keeps each job's lock token; a job that runs longer than
  half its lock or the queue's stall interval has them extended, and a job whose lease the server says is
  gone (stalled, expired, cancelled) is finished without an ack;
- it registers in the workers registry and heartbeats there;
- SIGTERM or SIGINT (or `stop()`): no more pulls, running jobs get `grace` seconds to finish, acks are
  flushed, the registration ends and `run()` returns. A second signal exits at once (leases then expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bunq.sdk._base import DEFAULT_URL, Retry
from bunq.sdk.active import ActiveJob, Sent
from bunq.sdk.aio import AsyncClient
from bunq.sdk.channel import JobChannel
from bunq.sdk.errors import BunqError, NotFound
from bunq.sdk.jobcalls import TRANSPORTS, Ack, JobCalls
from bunq.sdk.models import Lease

log = logging.getLogger("bunq.worker")

Handler = Callable[["ActiveJob"], Awaitable[Any]] | Callable[["ActiveJob"], Any]
MAX_ACK_BATCH = 1000
MAX_PULLS = 4  # pulls in flight at once (the second and later only for a quarter of the slots or more)
ERROR_BACKOFF_S = (0.05, 5.0)
YOUNG_GC_THRESHOLD = 50_000  # allocations between collections of the youngest generation (Python's default: 700)


class Worker:
    """Process `queue` with `handler` (`async def handler(job) -> result`, or a plain function, run in a
    thread pool), `concurrency` jobs at a time. Durations are seconds except `lock_ttl` (milliseconds, as
    the server takes it)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        queue: str = "default",
        handler: Handler | None = None,
        concurrency: int = 16,
        token: str | None = None,
        *,
        name: str | None = None,
        lock_ttl: int = 30_000,
        poll_timeout: float = 1.0,
        grace: float = 30.0,
        ack_delay: float = 0.002,
        register: bool = True,
        registry_heartbeat: float = 10.0,
        retry: Retry | None = None,
        transport: str = "websocket",
    ) -> None:
        if handler is None:
            raise TypeError("Worker needs a handler")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        self.url = url
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.token = token
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{queue}"
        self.lock_ttl = lock_ttl
        self.poll_timeout_ms = max(0, int(poll_timeout * 1000))
        self.grace = grace
        self.ack_delay = ack_delay
        self.register = register
        self.registry_heartbeat = registry_heartbeat
        self.retry = retry
        self.transport = transport
        self.is_async = inspect.iscoroutinefunction(handler)
        self.worker_id: str | None = None
        self.owner = f"{self.name}-{uuid.uuid4().hex[:8]}"
        self.processed = 0
        self.failed = 0
        self.lost = 0
        self.running: dict[str, ActiveJob] = {}
        self._busy = 0  # slots taken by running jobs (a lost one may share its id with its next run)
        self._reserved = 0  # slots the pulls in flight asked jobs for
        self._pulls_starting = 0  # pulls made but not yet sent
        self._calls: JobCalls | None = None
        self._pull_failures = 0
        self._client: AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        # made anew by each run() (an Event binds to the loop that first waits on it)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # a slot freed, or stopping
        self._acks: list[Ack] = []
        self._ack_wanted = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._signals = 0

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("the worker is not running")
        return self._client

    @property
    def calls(self) -> JobCalls:
        if self._calls is None:
            raise RuntimeError("the worker is not running")
        return self._calls

    # -- lifecycle -------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """End `run()` gracefully, as SIGTERM does; safe from any thread or a signal handler."""
        loop = self._loop
        if loop is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(self._begin_stop)

    def _begin_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run_sync(self) -> None:
        """Run until stopped or signalled (SIGTERM, SIGINT); returns when shut down cleanly. On uvloop where it
        is installed (it is with bunq, except on Windows): its loop costs a worker a fraction of asyncio's. The
        process is the worker's, so its garbage collector is tuned for it (`tune_gc`)."""
        try:
            import uvloop
        except ImportError:
            asyncio.run(self.run(tune_gc=True))
        else:
            uvloop.run(self.run(tune_gc=True))

    async def run(self, *, handle_signals: bool | None = None, tune_gc: bool = False) -> None:
        """Run until `stop()` or a signal. Signals are handled when run in the main thread (or when
        `handle_signals` says so). `tune_gc`: for a process that is mostly this worker (`tune_gc_for_worker`)."""
        if tune_gc:
            tune_gc_for_worker()
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._ack_wanted = asyncio.Event()
        if handle_signals is None:
            handle_signals = threading_is_main()
        if not self.is_async:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="bunq-job")
        self._client = AsyncClient(self.url, self.token, retry=self.retry, max_connections=self.concurrency + 8)
        self._calls = JobCalls(self._client, self.url, self.token, self.transport)
        if handle_signals:
            self._install_signals()
        try:
            await self._serve()
        finally:
            if handle_signals:
                self._remove_signals()
            await self.calls.close()  # what is still held (abandoned after the grace) goes back at once
            self.transport = self.calls.transport  # "http" if the server refused the upgrade
            await self._client.aclose()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        opening = asyncio.create_task(self._open_early())  # meanwhile: a pull would open it anyway
        await self._register()
        interval_s = await self._heartbeat_interval()
        await opening
        helpers = [
            asyncio.create_task(self._ack_loop(), name="bunq-acks"),
            asyncio.create_task(self._lease_loop(interval_s), name="bunq-leases"),
        ]
        if self.worker_id is not None:
            helpers.append(asyncio.create_task(self._registry_loop(), name="bunq-registry"))
        log.info("worker %s processing %r with %d slots", self.owner, self.queue, self.concurrency)
        try:
            await self._pull_loop()
        finally:
            self._begin_stop()
            await self._finish_running()
            self._ack_wanted.set()
            await helpers[0]  # the ack loop flushes what is left, then ends
            for task in helpers[1:]:
                task.cancel()
            await asyncio.gather(*helpers[1:], return_exceptions=True)
            await self._unregister()
        log.info(
            "worker %s stopped: %d done, %d failed, %d leases lost", self.owner, self.processed, self.failed, self.lost
        )

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    # -- the WebSocket ---------------------------------------------------------------------------------------

    async def _open_early(self) -> None:
        with contextlib.suppress(BunqError):  # the first pull tries again, and backs off
            await self.calls.open()

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now, %d running jobs' leases will expire", len(self.running))
            os._exit(128 + sig)
        log.info("signal %d: finishing %d running jobs (grace %.0f s)", sig, len(self.running), self.grace)
        self._begin_stop()

    # -- pulling ---------------------------------------------------------------------------------------------

    async def _pull_loop(self) -> None:
        """Keep the free slots asked for: a pull for every free slot as soon as one frees, and while one pull
        is out, a second for the slots that freed since, once they are a quarter of all of them."""
        pulls: set[asyncio.Task[None]] = set()
        while not self._stopping.is_set():
            free = self.concurrency - self._busy - self._reserved
            wanted = 1 if not pulls else max(1, self.concurrency // 4)
            if free < wanted or len(pulls) >= MAX_PULLS:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._reserved += free  # before the task runs, or the next turn of this loop would ask again
            self._pulls_starting += 1
            task = asyncio.create_task(self._pull(free))
            pulls.add(task)
            task.add_done_callback(pulls.discard)
        if pulls:  # what they bring runs within the grace period
            await asyncio.gather(*pulls, return_exceptions=True)

    async def _pull(self, count: int) -> None:
        # in the step that sends it: on an open channel the request is written before anything here waits
        self._pulls_starting -= 1
        channel = None
        owner = self.worker_id or self.owner
        try:
            leases, channel = await self.calls.pull(self.queue, count, self.poll_timeout_ms, owner, self.lock_ttl)
        except BunqError as exc:
            self._pull_failures += 1
            wait = min(ERROR_BACKOFF_S[1], ERROR_BACKOFF_S[0] * 2**self._pull_failures)
            log.warning("pull from %r failed (%s); again in %.2f s", self.queue, exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            leases = []
        else:
            self._pull_failures = 0
        finally:
            self._reserved -= count
            self._wake.set()
        for lease in leases:
            self._start(lease, channel)

    def _start(self, lease: Lease, channel: JobChannel | None) -> None:
        active = ActiveJob(lease.job, lease.token, self)
        active.channel = channel
        self.running[active.id] = active
        self._busy += 1
        task = asyncio.get_running_loop().create_task(self._run_job(active))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, active: ActiveJob) -> None:
        try:
            result = await self._call(active)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of user code fails the job
            await self._fail(active, exc)
        else:
            self._complete(active, result)
        finally:
            if self.running.get(active.id) is active:
                del self.running[active.id]
            self._busy -= 1
            self._wake.set()

    async def _call(self, active: ActiveJob) -> Any:
        if self.is_async:
            return await self.handler(active)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, self.handler, active)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine after all
            return await result
        return result

    def _complete(self, active: ActiveJob, result: Any) -> None:
        if active.lost:
            self.lost += 1
            log.warning("job %s finished after its lease was lost: not acked", active.id)
            return
        self._acks.append((active, result))
        self._ack_wanted.set()

    async def _fail(self, active: ActiveJob, exc: BaseException) -> None:
        if active.lost:
            self.lost += 1
            return
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        trace = "".join(traceback.format_exception(exc))
        try:
            await self.client.log(active.id, trace[-8000:], "error")
            await self.calls.fail(active, message)
            self.failed += 1
        except BunqError as err:
            log.warning("could not fail job %s (%s): its lease will expire", active.id, err)

    async def _finish_running(self) -> None:
        """After the last pull: the running jobs get `grace` seconds; those still running then are cancelled
        (async handlers) or left (threads), their leases to expire on the server."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.grace)
        if pending:
            log.warning("%d jobs still running after the %.0f s grace period: abandoned", len(pending), self.grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- acks ------------------------------------------------------------------------------------------------

    async def _ack_loop(self) -> None:
        """Send completions as they come: one `ack-batch` in flight at a time carries everything finished
        since the last one went out. Ends once stopping and nothing is left to send."""
        failures = 0
        while True:
            if not self._acks:
                if self._stopping.is_set() and not self._tasks:
                    return
                self._ack_wanted.clear()
                await self._ack_wanted.wait()
                continue
            if len(self._acks) < self.concurrency and not self._stopping.is_set():
                await asyncio.sleep(self.ack_delay)  # let the completions of the next few ms share the request
            await self._after_pulls()
            batch, self._acks = self._acks[:MAX_ACK_BATCH], self._acks[MAX_ACK_BATCH:]
            try:
                outcome = await self.calls.ack(batch)
            except BunqError as exc:  # sent again (over HTTP if its channel closed): fencing refuses a stale one
                failures += 1
                if failures > 8:
                    log.error(
                        "dropping %d acks after repeated failures (%s): their leases will expire", len(batch), exc
                    )
                    failures = 0
                    continue
                self._acks[:0] = batch
                await asyncio.sleep(min(ERROR_BACKOFF_S[1], ERROR_BACKOFF_S[0] * 2**failures))
                continue
            failures = 0
            self.processed += outcome.count
            if outcome.failed:
                self.lost += len(outcome.failed)
                log.warning(
                    "%d acks refused (lease lost): %s", len(outcome.failed), next(iter(outcome.failed.values()))
                )

    async def _after_pulls(self) -> None:
        """Let a pull that the same completions made room for go out before their ack. The slots wait for the
        pull's answer and nothing waits for the ack's, and a shard serves them in the order they come."""
        for _ in range(8):  # a pull goes out within two turns of the loop once it is due
            if self._stopping.is_set() or not (self._wake.is_set() or self._pulls_starting):
                return
            await asyncio.sleep(0)

    # -- leases ----------------------------------------------------------------------------------------------

    async def _heartbeat_interval(self) -> float:
        """Extend a job's lease once it is half way to the lock's expiry or the queue's stall check."""
        stall_ms = 30_000
        with contextlib.suppress(BunqError):
            stall_ms = (await self.client.stall_config(self.queue)).stall_interval
        return max(0.05, min(self.lock_ttl, stall_ms) / 2000)

    async def _lease_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(max(0.02, interval_s / 4))
            now = time.monotonic()
            due = [a for a in self.running.values() if not a.lost and now - a.extended >= interval_s]
            if due:
                await self._extend(due)

    async def _extend(self, due: list[ActiveJob]) -> None:
        try:
            outcome = await self.calls.heartbeat(due, self.lock_ttl)
        except BunqError as exc:
            log.warning("lease heartbeat failed (%s); trying again", exc)
            return
        now = time.monotonic()
        for active in due:
            if active.id in outcome.failed:
                active.lost = True
                log.warning("job %s lost its lease (%s)", active.id, outcome.failed[active.id])
            else:
                active.extended = now

    # -- registry --------------------------------------------------------------------------------------------

    async def _register(self) -> None:
        if not self.register:
            return
        try:
            info = await self.client.register_worker(
                self.name, [self.queue], concurrency=self.concurrency, hostname=socket.gethostname(), pid=os.getpid()
            )
        except BunqError as exc:
            log.warning("could not register in the workers registry (%s); running unregistered", exc)
            return
        self.worker_id = info.id

    async def _registry_loop(self) -> None:
        assert self.worker_id is not None
        while True:
            await asyncio.sleep(self.registry_heartbeat)
            try:
                await self.client.worker_heartbeat(self.worker_id)
            except NotFound:
                await self._register()
            except BunqError as exc:
                log.warning("worker heartbeat failed (%s)", exc)

    async def _unregister(self) -> None:
        if self.worker_id is None:
            return
        with contextlib.suppress(BunqError):
            await self.client.unregister_worker(self.worker_id)

    # -- helpers for ActiveJob -------------------------------------------------------------------------------

    def send(self, call: Awaitable[None]) -> Sent:
        """Run a request for a handler: as a task from the loop, to completion from a pool thread."""
        loop = self._loop
        assert loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = asyncio.ensure_future(call)
            task.add_done_callback(_log_failure)
            return Sent(task)
        asyncio.run_coroutine_threadsafe(_as_coroutine(call), loop).result()
        return Sent(None)


async def _as_coroutine(call: Awaitable[None]) -> None:
    await call


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("job request failed: %s", task.exception())


def tune_gc_for_worker() -> None:
    """What the process made before the worker started (modules, the application) lives as long as it: frozen,
    it is no longer walked by every full collection, which took 11-15 ms in the middle of a busy worker's
    pulls (twice per 20,000 no-op jobs); and the youngest generation is collected less often, since each
    collection costs the same however few of its objects are garbage. Process-wide, hence not the default
    of `run()` inside someone else's application."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(max(YOUNG_GC_THRESHOLD, gc.get_threshold()[0]), middle, old)


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()
