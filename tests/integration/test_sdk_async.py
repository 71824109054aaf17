"""The async SDK client (`bunq.sdk.AsyncClient`) against a real `bunq serve`, and the event stream of both
clients. `Client` is generated from `AsyncClient`, so test_sdk_client.py covers the surface; here the async
path of the calls users make most, and `events()`, each test driving its coroutine with `asyncio.run`."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path

import pytest

from bunq.sdk import AsyncClient, BadRequest, Client, Event, NotFound, Retry, TransportError
from tests.support.processes import BunqServer, free_port

EVENT_TIMEOUT_S = 10.0


async def first_event(
    stream: AsyncIterator[Event],
    produce: Callable[[], Awaitable[str]],
    timeout: float = EVENT_TIMEOUT_S,
    skip: Collection[str] = (),
) -> tuple[Event, list[str]]:
    """The first event `stream` yields while `produce` is called (every 100 ms, since the subscription is
    live only some time after the stream is opened), and the ids `produce` returned. Events of the jobs in
    `skip` (ones an earlier call produced) are passed over."""
    produced: list[str] = []
    deadline = time.monotonic() + timeout
    next_event = asyncio.ensure_future(anext(stream))
    try:
        while time.monotonic() < deadline:
            produced.append(await produce())
            done, _ = await asyncio.wait({next_event}, timeout=0.1)
            while done:
                event = next_event.result()
                if event.job_id not in skip:
                    return event, produced
                next_event = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait({next_event}, timeout=0.01)
        raise AssertionError(f"no event within {timeout}s")
    finally:
        next_event.cancel()


# -- calls -----------------------------------------------------------------------------------------------


def test_push_with_options_and_get_job(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            job_id = await bunq.push(queue, {"to": "a@b.c"}, priority=4, tags=["x"], max_attempts=2)
            job = await bunq.get_job(job_id)
            assert (job.id, job.data, job.priority, job.tags, job.max_attempts) == (
                job_id,
                {"to": "a@b.c"},
                4,
                ["x"],
                2,
            )
            assert await bunq.get_state(job_id) == "waiting"

    asyncio.run(main())


def test_push_bulk_in_order_and_atomic(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            ids = await bunq.push_bulk(queue, [{"data": i} for i in range(5)])
            assert [lease.job.id for lease in await bunq.pull_batch(queue, 5)] == ids
            with pytest.raises(BadRequest) as refused:
                await bunq.push_bulk(queue, [{"data": 1}, {"data": 2, "delay": -1}])
            assert "delay" in refused.value.error
            assert await bunq.count(queue) == 5

    asyncio.run(main())


def test_pull_with_owner_and_ack_with_its_token(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            job_id = await bunq.push(queue, 1)
            lease = await bunq.pull(queue, owner="async-worker")
            assert lease is not None and lease.job.id == job_id and lease.token
            with pytest.raises(BadRequest):
                await bunq.ack(job_id, token="forged")
            await bunq.ack(job_id, {"ok": 1}, token=lease.token)
            assert await bunq.get_result(job_id) == {"ok": 1}
            assert await bunq.pull(queue) is None

    asyncio.run(main())


def test_concurrent_calls_share_one_client(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            ids = await asyncio.gather(*(bunq.push(queue, i) for i in range(50)))
            assert len(set(ids)) == 50
            jobs = await asyncio.gather(*(bunq.get_job(i) for i in ids))
            assert [job.data for job in jobs] == list(range(50))

    asyncio.run(main())


def test_wait_completes_when_acked_and_times_out_otherwise(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            job_id = await bunq.push(queue, 1)
            idle = await bunq.push(queue, 2, delay=60_000)
            waiting = asyncio.ensure_future(bunq.wait(job_id, 10_000))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            lease = await bunq.pull(queue)
            assert lease is not None and lease.job.id == job_id
            await bunq.ack(job_id, "done")
            result = await asyncio.wait_for(waiting, 5)
            assert result.completed and result.result == "done"
            started = time.monotonic()
            timed_out = await bunq.wait(idle, 300)
            assert not timed_out.completed and time.monotonic() - started >= 0.25

    asyncio.run(main())


def test_errors_carry_the_servers_error_and_status(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            with pytest.raises(NotFound) as missing:
                await bunq.get_job(f"missing-{queue}")
            assert missing.value.error == "Job not found" and missing.value.status == 404
            with pytest.raises(BadRequest) as bad:
                await bunq.push("bad queue!", 1)
            assert bad.value.status == 400 and bad.value.error
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", retry=Retry(attempts=1)) as closed:
            with pytest.raises(TransportError) as unreachable:
                await closed.ping()
            assert unreachable.value.status == 0

    asyncio.run(main())


# -- events ----------------------------------------------------------------------------------------------


def test_events_of_a_queue_yield_job_pushed(live_server: BunqServer, queue: str) -> None:
    other = queue + "-other"

    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            stream = bunq.events(queue, ["job:*"])

            async def produce() -> str:
                await bunq.push(other, "elsewhere")  # not this queue's: never yielded
                return await bunq.push(queue, "here")

            try:
                event, pushed = await first_event(stream, produce)
            finally:
                await stream.aclose()
            assert event.event == "job:pushed" and event.queue == queue and event.job_id in pushed
            assert event.ts > 0

    asyncio.run(main())


def test_events_names_filter_yields_only_those_events(live_server: BunqServer, queue: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            stream = bunq.events(queue, ["job:completed"])

            async def produce() -> str:
                job_id = await bunq.push(queue, 1)  # job:pushed and job:active come first, filtered out
                assert await bunq.pull(queue) is not None
                await bunq.ack(job_id)
                return job_id

            try:
                event, completed = await first_event(stream, produce)
                assert event.event == "job:completed" and event.job_id in completed
                second, more = await first_event(stream, produce)
                assert second.event == "job:completed" and second.job_id in completed + more
            finally:
                await stream.aclose()

    asyncio.run(main())


def test_sync_client_events_iterator(live_server: BunqServer, queue: str) -> None:
    got: list[Event] = []
    with Client(live_server.url) as bunq:
        stream = bunq.events(queue, ["job:pushed"])

        def consume() -> None:
            for event in stream:
                got.append(event)
                break

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        pushed = []
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while not got and time.monotonic() < deadline:
            pushed.append(bunq.push(queue, "x"))
            reader.join(0.1)
        assert not reader.is_alive()
        stream.close()
    assert len(got) == 1 and got[0].event == "job:pushed" and got[0].job_id in pushed


def test_events_reconnect_after_the_server_restarts(tmp_path: Path) -> None:
    server = BunqServer(tmp_path / "data", shards=2)
    queue = "reconnect"

    async def main() -> None:
        async with AsyncClient(server.url, retry=Retry(attempts=1)) as bunq:
            stream = bunq.events(queue, ["job:pushed"])

            async def produce() -> str:
                return await bunq.push(queue, "x")

            try:
                before, earlier = await first_event(stream, produce)
                assert before.event == "job:pushed"
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)  # the same port
                after, pushed = await first_event(stream, produce, timeout=20, skip=earlier)
                assert after.event == "job:pushed" and after.job_id in pushed
            finally:
                await stream.aclose()

    try:
        server.start()
        asyncio.run(main())
    finally:
        server.stop()


def test_closing_the_stream_closes_its_connection_before_the_loop_ends(live_server: BunqServer, queue: str) -> None:
    """`aclose()` right before `asyncio.run` returns leaves no socket for the garbage collector to find."""

    async def main() -> None:
        async with AsyncClient(live_server.url) as bunq:
            stream = bunq.events(queue, ["job:pushed"])

            async def produce() -> str:
                return await bunq.push(queue, 1)

            await first_event(stream, produce)
            await stream.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(10):
            asyncio.run(main())
            gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


ABANDONED_STREAM = """
import sys, threading
from bunq.sdk import Client
client = Client(sys.argv[1])
stream = client.events(sys.argv[2], ["job:pushed"])  # module-level: still suspended when the interpreter exits
got = []
reader = threading.Thread(target=lambda: got.append(next(stream)), daemon=True)
reader.start()
while not got:
    client.push(sys.argv[2], 1)
    reader.join(0.1)
print(got[0].event)
"""


def test_a_process_exits_with_a_sync_stream_left_open(live_server: BunqServer, queue: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ABANDONED_STREAM, live_server.url, queue],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "job:pushed"
