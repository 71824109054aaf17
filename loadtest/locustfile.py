"""Locust load test for servers speaking the bunqueue HTTP API (bunq, bunqueue).

Two user classes share a few queues:

* ``Producer`` pushes single jobs (``POST /queues/:q/jobs``) and now and then a bulk of 50
  (``POST /queues/:q/jobs/bulk``).
* ``Worker`` long-polls ``GET /queues/:q/jobs?timeout=1000``, then acks the job (``POST /jobs/:id/ack``) or,
  now and then, fails it (``POST /jobs/:id/fail``) so the retry path gets exercised too.

Every response is checked: HTTP 200 and ``"ok": true`` (a pull answering ``"job": null`` is fine), plus the
shape of the payload (an ``id``, 50 ``ids``, a job with an ``id``); anything else is a locust failure, so a
headless run exits non-zero when the server misbehaved.

Run (headless, 50 users, 30 s)::

    locust -f loadtest/locustfile.py --host http://127.0.0.1:6790 --headless -u 50 -r 10 -t 30s

Environment knobs: ``BUNQ_LOCUST_QUEUES`` (comma-separated queue names, default ``locust-a,locust-b,locust-c``),
``BUNQ_LOCUST_FAIL_RATE`` (fraction of pulled jobs the workers fail, default 0.05).
"""

from __future__ import annotations

import os
import random
from typing import Any

import gevent
from locust import FastHttpUser, between, constant, task
from locust.contrib.fasthttp import ResponseContextManager

QUEUES = [q.strip() for q in os.environ.get("BUNQ_LOCUST_QUEUES", "locust-a,locust-b,locust-c").split(",") if q.strip()]
FAIL_RATE = float(os.environ.get("BUNQ_LOCUST_FAIL_RATE", "0.05"))
BULK_SIZE = 50
POLL_MS = 1000
ERROR_BACKOFF_S = 0.1  # pause after a failed pull so a broken server is not hammered in a tight loop


def checked(resp: ResponseContextManager) -> dict[str, Any] | None:
    """The decoded body when the response is HTTP 200 with ``"ok": true``; otherwise mark it failed."""
    if resp.status_code != 200:
        resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
        return None
    try:
        body = resp.json()
    except ValueError:
        resp.failure(f"invalid JSON body: {(resp.text or '')[:200]}")
        return None
    if not isinstance(body, dict) or body.get("ok") is not True:
        resp.failure(f"not ok: {str(body)[:200]}")
        return None
    return body


class Producer(FastHttpUser):
    """Pushes jobs: mostly one at a time, sometimes a bulk of 50."""

    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        self.seq = 0

    def _data(self) -> dict[str, Any]:
        self.seq += 1
        return {"producer": id(self), "seq": self.seq}

    @task(10)
    def push(self) -> None:
        queue = random.choice(QUEUES)
        with self.client.post(
            f"/queues/{queue}/jobs", json={"data": self._data()}, name="push /queues/[q]/jobs", catch_response=True
        ) as resp:
            body = checked(resp)
            if body is not None and not isinstance(body.get("id"), str):
                resp.failure(f"push: no id in {str(body)[:200]}")

    @task(1)
    def push_bulk(self) -> None:
        queue = random.choice(QUEUES)
        jobs = [{"data": self._data()} for _ in range(BULK_SIZE)]
        with self.client.post(
            f"/queues/{queue}/jobs/bulk", json={"jobs": jobs}, name="bulk /queues/[q]/jobs/bulk", catch_response=True
        ) as resp:
            body = checked(resp)
            ids = None if body is None else body.get("ids")
            if body is not None and (not isinstance(ids, list) or len(ids) != BULK_SIZE):
                resp.failure(f"bulk: expected {BULK_SIZE} ids, got {str(ids)[:200]}")


class Worker(FastHttpUser):
    """Long-polls a queue, then acks the job, or fails it with probability FAIL_RATE."""

    wait_time = constant(0)  # the long-poll itself throttles an idle worker

    @task
    def work(self) -> None:
        ok, job = self._pull(random.choice(QUEUES))
        if not ok:
            gevent.sleep(ERROR_BACKOFF_S)
        if job is None:
            return
        if random.random() < FAIL_RATE:
            self._finish(job["id"], "fail", {"error": "simulated failure (locust)"})
        else:
            self._finish(job["id"], "ack", {"result": {"done": True}})

    def _pull(self, queue: str) -> tuple[bool, dict[str, Any] | None]:
        """(whether the pull succeeded, the job or None)."""
        with self.client.get(
            f"/queues/{queue}/jobs?timeout={POLL_MS}", name="pull /queues/[q]/jobs?timeout", catch_response=True
        ) as resp:
            body = checked(resp)
            if body is None:
                return False, None
            job = body.get("job")
            if job is None:
                return True, None  # "job": null just means the long-poll expired on an empty queue
            if not isinstance(job, dict) or not isinstance(job.get("id"), str):
                resp.failure(f"pull: malformed job {str(job)[:200]}")
                return False, None
            return True, job

    def _finish(self, job_id: str, action: str, payload: dict[str, Any]) -> None:
        with self.client.post(
            f"/jobs/{job_id}/{action}", json=payload, name=f"{action} /jobs/[id]/{action}", catch_response=True
        ) as resp:
            checked(resp)
