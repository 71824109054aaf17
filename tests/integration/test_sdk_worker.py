"""`bunq.sdk.Worker` against real bunq processes: results, failures into the DLQ, slots, leases and fencing,
registration, and shutdown by signal with nothing lost or done twice."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bunq.sdk import ActiveJob, AsyncClient, Client, Retry, Worker
from bunq.sdk.channel import JobChannel
from tests.support.processes import ROOT, BunqServer, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=["websocket", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every behaviour holds whichever way the worker's pulls and acks travel."""
    return str(request.param)


def run_until(worker: Worker, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run `worker` until `done()` holds (or fail after `timeout`), then stop it and wait for the end."""

    async def main() -> None:
        task = asyncio.create_task(worker.run(handle_signals=False))
        deadline = time.monotonic() + timeout
        while not done():
            if task.done():
                await task
                raise AssertionError("the worker ended by itself")
            if time.monotonic() > deadline:
                worker.stop()
                await task
                raise AssertionError("timed out waiting for the worker")
            await asyncio.sleep(0.01)
        worker.stop()
        await asyncio.wait_for(task, 40)

    asyncio.run(main())


def test_results_progress_and_logs_reach_the_server(live_server: BunqServer, queue: str, transport: str) -> None:
    async def handler(job: ActiveJob) -> Any:
        await job.progress(50, "half way")
        job.log("working on it")  # not awaited: still sent
        return {"doubled": job.data["n"] * 2, "attempts": job.attempts}

    with Client(live_server.url) as client:
        ids = client.push_bulk(queue, [{"data": {"n": n}} for n in range(20)])
        worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=4)
        run_until(worker, lambda: worker.processed == 20)
        for n, job_id in enumerate(ids):
            assert client.get_state(job_id) == "completed"
            assert client.get_result(job_id) == {"doubled": n * 2, "attempts": 0}  # none failed before
        job_id = ids[0]
        assert client.get_progress(job_id).progress == 50
        assert [entry.message for entry in client.get_logs(job_id)] == ["working on it"]
    assert worker.failed == 0 and worker.lost == 0


def test_a_plain_function_runs_in_the_thread_pool(live_server: BunqServer, queue: str, transport: str) -> None:
    import threading

    threads: set[str] = set()

    def handler(job: ActiveJob) -> Any:
        threads.add(threading.current_thread().name)
        job.progress(10)  # from a thread: blocks until sent
        time.sleep(0.01)
        return job.data

    with Client(live_server.url) as client:
        ids = client.push_bulk(queue, [{"data": n} for n in range(12)])
        worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=3)
        run_until(worker, lambda: worker.processed == 12)
        assert [client.get_result(i) for i in ids] == list(range(12))
        assert client.get_progress(ids[0]).progress == 10
    assert threads and all(name.startswith("bunq-job") for name in threads)


def test_an_exception_fails_the_job_with_its_message_until_it_lands_in_the_dlq(
    live_server: BunqServer, queue: str, transport: str
) -> None:
    runs: list[int] = []

    async def handler(job: ActiveJob) -> Any:
        runs.append(job.attempts)
        raise ValueError(f"bad input {job.data}")

    with Client(live_server.url) as client:
        job_id = client.push(queue, 7, max_attempts=2, backoff=1)
        worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=2)
        run_until(worker, lambda: worker.failed == 2)
        wait_until(lambda: client.dlq(queue))
        [entry] = client.dlq(queue)
        assert entry.id == job_id
        assert entry.error == "ValueError: bad input 7"
        logs = [log for log in client.get_logs(job_id) if log.level == "error"]
        assert logs and "Traceback" in logs[0].message and "ValueError: bad input 7" in logs[0].message
    assert runs == [0, 1]
    assert worker.processed == 0


def test_slots_are_never_exceeded_and_are_all_used(live_server: BunqServer, queue: str, transport: str) -> None:
    running = 0
    most = 0

    async def handler(job: ActiveJob) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    with Client(live_server.url) as client:
        client.push_bulk(queue, [{"data": n} for n in range(60)])
        worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=5)
        holding: list[int] = []
        original = worker._start

        def start(lease: Any, channel: Any) -> None:
            original(lease, channel)
            holding.append(len(worker.running))

        worker._start = start  # type: ignore[method-assign]
        run_until(worker, lambda: worker.processed == 60)
    assert most == 5
    assert max(holding) <= 5  # jobs held at once, counted as each one arrives


def test_an_idle_worker_waits_in_the_long_poll(
    live_server: BunqServer, queue: str, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    pulls: list[float] = []
    request = AsyncClient.request
    command = JobChannel.call

    async def counting(self: AsyncClient, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if path.endswith("/pull-batch"):
            pulls.append(time.monotonic())
        return await request(self, method, path, *args, **kwargs)

    async def counting_commands(self: JobChannel, message: dict[str, Any], wait_ms: int = 0) -> dict[str, Any]:
        if message["cmd"] == "PULLB":
            pulls.append(time.monotonic())
        return await command(self, message, wait_ms)

    monkeypatch.setattr(AsyncClient, "request", counting)
    monkeypatch.setattr(JobChannel, "call", counting_commands)
    done: list[str] = []

    async def handler(job: ActiveJob) -> Any:
        done.append(job.id)

    worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=8, poll_timeout=1.0)
    started = time.monotonic()
    pushed: list[str] = []

    def idle_then_push() -> bool:
        if time.monotonic() - started > 2.5 and not pushed:
            with Client(live_server.url) as client:
                pushed.append(client.push(queue, "late"))
        return bool(done)

    run_until(worker, idle_then_push)
    idle = [t for t in pulls if t - started < 2.5]
    assert len(idle) <= 4  # one long poll a second, not a spin
    assert done == pushed


def test_a_long_job_keeps_its_lease_by_heartbeat(live_server: BunqServer, queue: str, transport: str) -> None:
    async def handler(job: ActiveJob) -> Any:
        await asyncio.sleep(2.5)  # five times the lock
        return "kept"

    with Client(live_server.url) as client:
        job_id = client.push(queue, None)
        worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=1, lock_ttl=500)
        run_until(worker, lambda: worker.processed == 1)
        job = client.get_job(job_id)
        assert (job.state, job.attempts, job.stall_count) == ("completed", 0, 0)  # never stalled or retried
        assert client.get_result(job_id) == "kept"
    assert worker.lost == 0


def test_a_worker_whose_lease_was_taken_never_completes_the_job(
    live_server: BunqServer, queue: str, transport: str
) -> None:
    """The worker's process freezes (a handler blocking its loop) past the lock: the server gives the job
    to another worker; when the frozen one wakes, its stale token is refused and the job stays the other's."""
    import threading

    frozen_now = threading.Event()

    async def frozen(job: ActiveJob) -> Any:
        frozen_now.set()
        time.sleep(2.0)  # blocks the event loop: no heartbeats go out
        return "from the frozen worker"

    taken: list[Any] = []

    def other_worker(client: Client) -> None:
        frozen_now.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not taken:
            lease = client.pull(queue, 500, owner="the-other-worker", lock_ttl=30_000)
            if lease is not None:
                taken.append(lease)
                client.ack(lease.job.id, "from the other worker", token=lease.token)

    with Client(live_server.url) as client:
        job_id = client.push(queue, None, max_attempts=5)
        worker = Worker(
            live_server.url, queue, frozen, transport=transport, concurrency=1, lock_ttl=400, register=False
        )
        thread = threading.Thread(target=other_worker, args=(client,))
        thread.start()
        run_until(worker, lambda: worker.lost == 1 or worker.processed == 1)
        thread.join(10)
        [lease] = taken
        assert lease.job.id == job_id
        assert client.get_result(job_id) == "from the other worker"
    assert worker.processed == 0 and worker.lost == 1


def test_it_registers_counts_its_jobs_and_unregisters(live_server: BunqServer, queue: str, transport: str) -> None:
    seen: list[Any] = []

    async def handler(job: ActiveJob) -> Any:
        await asyncio.sleep(0.01)

    with Client(live_server.url) as client:
        client.push_bulk(queue, [{"data": n} for n in range(30)])
        worker = Worker(
            live_server.url,
            queue,
            handler,
            transport=transport,
            concurrency=4,
            name=f"w-{queue}",
            registry_heartbeat=0.3,
        )

        def registered_and_done() -> bool:
            if not seen:
                seen.extend(w for w in client.workers() if w.name == f"w-{queue}")
            return worker.processed == 30 and bool(seen)

        run_until(worker, registered_and_done)
        [info] = seen
        assert info.queues == [queue] and info.concurrency == 4 and info.id == worker.worker_id
        assert all(w.name != f"w-{queue}" for w in client.workers())


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from bunq.sdk import Worker

    url, queue, log_path, delay, transport = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
    log = open(log_path, "a", buffering=1)

    async def handler(job):
        await asyncio.sleep(delay)
        log.write(job.id + "\\n")
        return os.getpid()

    print("ready", flush=True)
    Worker(url, queue, handler, concurrency=8, grace=30, name="sig-" + queue, transport=transport).run_sync()
    print("clean exit", flush=True)
    """
)


def start_worker(tmp_path: Path, url: str, queue: str, delay: float, transport: str) -> subprocess.Popen[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    log = tmp_path / "done.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(script), url, queue, str(log), str(delay), transport]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_sigterm_under_load_finishes_running_jobs_and_loses_nothing(
    live_server: BunqServer, queue: str, tmp_path: Path, transport: str
) -> None:
    log = tmp_path / "done.log"
    with Client(live_server.url, retry=Retry(attempts=3)) as client:
        ids = client.push_bulk(queue, [{"data": n} for n in range(400)])
        proc = start_worker(tmp_path, live_server.url, queue, 0.05, transport)
        wait_until(lambda: log.exists() and len(log.read_text().split()) >= 40)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, out
        assert "clean exit" in out
        first = log.read_text().split()
        counts = client.counts(queue)
        assert counts.active == 0  # every job it had started was finished and acked before it exited
        assert counts.completed == len(first) < 400
        assert all(w.name != "sig-" + queue for w in client.workers())

        second = start_worker(tmp_path, live_server.url, queue, 0.0, transport)
        wait_until(lambda: client.counts(queue).completed == 400)
        second.send_signal(signal.SIGINT)
        out, _ = second.communicate(timeout=40)
        assert second.returncode == 0, out
    done = log.read_text().split()
    assert sorted(done) == sorted(ids)  # each job handled exactly once across both workers


def test_a_second_signal_exits_at_once(live_server: BunqServer, queue: str, tmp_path: Path, transport: str) -> None:
    with Client(live_server.url) as client:
        client.push(queue, None)
        proc = start_worker(tmp_path, live_server.url, queue, 60.0, transport)
        wait_until(lambda: client.counts(queue).active == 1)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None  # still finishing its job
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
        assert proc.returncode == 128 + signal.SIGINT, out


def test_stop_from_another_thread_ends_run_sync(live_server: BunqServer, queue: str, transport: str) -> None:
    import threading

    async def handler(job: ActiveJob) -> Any:
        return None

    worker = Worker(live_server.url, queue, handler, transport=transport, concurrency=2, poll_timeout=0.5)
    thread = threading.Thread(target=worker.run_sync)
    thread.start()
    wait_until(lambda: worker.worker_id is not None)
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_handler_must_be_given() -> None:
    with pytest.raises(TypeError):
        Worker("http://127.0.0.1:1", "q", None)
    with pytest.raises(ValueError):
        Worker("http://127.0.0.1:1", "q", _noop, concurrency=0)


async def _noop(job: ActiveJob) -> None:
    return None


# -- the WebSocket transport ------------------------------------------------------------------------------


def test_a_dropped_websocket_hands_the_running_jobs_back_and_they_run_again(
    live_server: BunqServer, queue: str
) -> None:
    """The connection breaks under three running jobs: the server puts them back at once; when they finish,
    their acks (over HTTP now) are refused by their stale tokens, and the jobs run again to completion."""
    runs: dict[str, int] = {}
    release = asyncio.Event()

    async def handler(job: ActiveJob) -> Any:
        runs[job.id] = runs.get(job.id, 0) + 1
        if runs[job.id] == 1 and len(runs) <= 3:
            await release.wait()
        return runs[job.id]

    with Client(live_server.url) as client:
        ids = client.push_bulk(queue, [{"data": n} for n in range(6)])
        worker = Worker(live_server.url, queue, handler, concurrency=3)
        state = {"cut": False}

        def cut_then_done() -> bool:
            channel = worker._calls.channel if worker._calls is not None else None
            if not state["cut"] and len(runs) == 3 and channel is not None:
                transport = channel._ws.transport  # type: ignore[union-attr]
                transport.abort()  # as a network failure: no closing handshake
                state["cut"] = True
            if state["cut"] and not release.is_set() and client.counts(queue).waiting == 6:
                release.set()  # all three are back in the queue: now let their first runs finish
            return worker.processed == 6

        run_until(worker, cut_then_done)
        first_three = [i for i in ids if runs[i] == 2]
        assert len(first_three) == 3 and all(client.get_result(i) == 2 for i in first_three)
        assert all(client.get_state(i) == "completed" for i in ids)
        assert client.get_job(first_three[0]).attempts == 0  # given back, not failed
    assert worker.lost == 3


def test_a_front_killed_under_running_jobs_loses_nothing_and_runs_nothing_twice(server: BunqServer, queue: str) -> None:
    """The front holding the worker's WebSocket dies, so nobody gives its jobs back: the worker reconnects to
    the restarted front, and the running jobs' acks, over HTTP with their tokens, complete them."""
    runs: dict[str, int] = {}
    release = asyncio.Event()

    async def handler(job: ActiveJob) -> Any:
        runs[job.id] = runs.get(job.id, 0) + 1
        await release.wait()
        return "done"

    with Client(server.url, retry=Retry(attempts=20, base_s=0.1, cap_s=0.5)) as client:
        ids = client.push_bulk(queue, [{"data": n} for n in range(4)])
        worker = Worker(server.url, queue, handler, concurrency=4, retry=Retry(attempts=20, base_s=0.1, cap_s=0.5))
        front = server.children()["front"]
        state = {"killed": False}

        def kill_then_done() -> bool:
            if not state["killed"] and len(runs) == 4:
                os.kill(front, signal.SIGKILL)
                state["killed"] = True
            if state["killed"] and not release.is_set():
                restarted = server.children().get("front") not in (None, front)
                if restarted and client.health()["status"] == "healthy":
                    release.set()
            return worker.processed == 4

        run_until(worker, kill_then_done, timeout=40)
        assert all(client.get_state(i) == "completed" and client.get_result(i) == "done" for i in ids)
    assert runs == {i: 1 for i in ids} and worker.lost == 0


def test_the_jobs_of_a_killed_worker_go_back_at_once_not_at_their_lock(
    live_server: BunqServer, queue: str, tmp_path: Path
) -> None:
    with Client(live_server.url) as client:
        client.push_bulk(queue, [{"data": n} for n in range(8)])
        proc = start_worker(tmp_path, live_server.url, queue, 600.0, "websocket")  # locks of 30 s
        wait_until(lambda: client.counts(queue).active == 8)
        proc.kill()
        proc.communicate(timeout=10)
        wait_until(lambda: client.counts(queue).waiting == 8, timeout=10)
        assert client.counts(queue).active == 0


def test_a_server_that_refuses_the_upgrade_is_worked_over_http(
    live_server: BunqServer, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bunq.sdk.channel.WS_PATH", "/no-such-socket")  # upgrades there are refused (403)

    async def handler(job: ActiveJob) -> Any:
        return job.data

    with Client(live_server.url) as client:
        client.push_bulk(queue, [{"data": n} for n in range(5)])
        worker = Worker(live_server.url, queue, handler, concurrency=2)
        run_until(worker, lambda: worker.processed == 5)
    assert worker.transport == "http" and worker.lost == 0


def test_a_worker_with_the_token_works_where_auth_is_required(auth_server: BunqServer, transport: str) -> None:
    async def handler(job: ActiveJob) -> Any:
        return job.data * 2

    queue = f"auth-{transport}"
    with Client(auth_server.url, token="secret") as client:
        ids = client.push_bulk(queue, [{"data": n} for n in range(4)])
        worker = Worker(auth_server.url, queue, handler, concurrency=2, token="secret", transport=transport)
        run_until(worker, lambda: worker.processed == 4)
        assert [client.get_result(i) for i in ids] == [0, 2, 4, 6]


def test_a_clean_stop_closes_the_websocket_without_a_warning(
    live_server: BunqServer, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(job: ActiveJob) -> Any:
        return None

    with Client(live_server.url) as client:
        client.push_bulk(queue, [{"data": n} for n in range(3)])
        worker = Worker(live_server.url, queue, handler, concurrency=2)
        with caplog.at_level(logging.WARNING, logger="bunq.worker"):
            run_until(worker, lambda: worker.processed == 3)
    assert worker.transport == "websocket"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
