"""bunqueue's Python SDK (`bunqueue-client`, TCP mode), unchanged, against bunq."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from bunqueue import CommandError, Queue, UnrecoverableError, Worker

from tests.support.processes import BunqServer, wait_until

pytestmark = pytest.mark.integration


def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_queue_and_worker_process_every_job_once(served: BunqServer) -> None:
    queue = Queue("py-process", host="127.0.0.1", port=served.tcp_port)
    try:
        ids = [queue.add("one", {"i": i}).id for i in range(50)]
        ids += queue.add_bulk([{"name": "bulk", "data": {"i": 50 + i}, "priority": i % 3} for i in range(50)])
        assert len(set(ids)) == 100
        seen: Counter[str] = Counter()
        lock = threading.Lock()

        def process(job: Any) -> dict[str, int]:
            with lock:
                seen[job.id] += 1
            job.update_progress(60, "most of it")
            job.log(f"processing {job.data['i']}")
            return {"square": job.data["i"] ** 2}

        worker = Worker(
            "py-process",
            process,
            host="127.0.0.1",
            port=served.tcp_port,
            concurrency=6,
            autorun=False,
            poll_timeout_ms=200,
        )
        worker.start()
        try:
            until(lambda: queue.get_job_counts().get("completed") == 100)
        finally:
            worker.close()
        assert set(seen) == set(ids) and max(seen.values()) == 1
        assert queue.get_state(ids[7]) == "completed"
        assert queue.get_result(ids[7]) == {"square": 49}
        job = queue.get_job(ids[7])
        assert job is not None and job.progress == 60
        assert [entry["message"] for entry in queue.get_job_logs(ids[7])] == ["processing 7"]
    finally:
        queue.close()


def test_retries_end_in_the_dlq_and_an_unrecoverable_error_at_once(served: BunqServer) -> None:
    queue = Queue("py-failures", host="127.0.0.1", port=served.tcp_port)
    calls: Counter[str] = Counter()

    def process(job: Any) -> None:
        calls[job.data["kind"]] += 1
        if job.data["kind"] == "fatal":
            raise UnrecoverableError("hopeless")
        raise RuntimeError("flaky")

    try:
        retried = queue.add("retry", {"kind": "retry"}, attempts=3, backoff=10).id
        fatal = queue.add("fatal", {"kind": "fatal"}, attempts=5, backoff=10).id
        worker = Worker(
            "py-failures",
            process,
            host="127.0.0.1",
            port=served.tcp_port,
            concurrency=2,
            autorun=False,
            poll_timeout_ms=200,
        )
        worker.start()
        try:
            until(lambda: queue.get_state(retried) == "failed" and queue.get_state(fatal) == "failed")
        finally:
            worker.close()
        assert calls == {"retry": 3, "fatal": 1}
        entries = {entry["id"]: entry for entry in queue.get_dlq()}
        assert set(entries) == {retried, fatal}
        assert entries[fatal]["error"] == "hopeless" and entries[fatal]["reason"] == "unrecoverable"
        assert entries[retried]["reason"] == "max_attempts_exceeded"
    finally:
        queue.close()


def test_jobs_pushed_over_http_are_consumed_by_the_python_worker(served: BunqServer) -> None:
    body = {"jobs": [{"data": {"i": i}} for i in range(30)]}
    ids = httpx.post(f"{served.url}/queues/py-cross/jobs/bulk", json=body).json()["ids"]
    done: list[str] = []
    worker = Worker(
        "py-cross",
        lambda job: done.append(job.id),
        host="127.0.0.1",
        port=served.tcp_port,
        autorun=False,
        poll_timeout_ms=200,
    )
    worker.start()
    try:
        wait_until(lambda: httpx.get(f"{served.url}/queues/py-cross/counts").json()["counts"]["completed"] == 30)
    finally:
        worker.close()
    assert sorted(done) == sorted(ids)


def test_auth_with_and_without_a_token(authed: BunqServer) -> None:
    anonymous = Queue("py-auth", host="127.0.0.1", port=authed.tcp_port, command_timeout=5)
    try:
        with pytest.raises(CommandError, match="Not authenticated"):
            anonymous.add("x", {"n": 1})
    finally:
        anonymous.close()
    queue = Queue("py-auth", host="127.0.0.1", port=authed.tcp_port, token="s3cret")
    try:
        job_id = queue.add("x", {"n": 2}).id
        assert queue.get_state(job_id) == "waiting"
    finally:
        queue.close()
