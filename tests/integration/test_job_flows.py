"""Job options through `bunq serve`: flows across shards and restarts, lock takeover, groups, wait."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from bunq.routing import shard_of_slot, slot_of
from tests.support.processes import BunqServer, wait_until

pytestmark = pytest.mark.integration


def queue_on(shard: int, shards: int = 2, prefix: str = "q") -> str:
    return next(f"{prefix}{i}" for i in range(1000) if shard_of_slot(slot_of(f"{prefix}{i}", 256), shards) == shard)


def test_cross_shard_flow_survives_a_restart_in_the_middle(server: BunqServer) -> None:
    parent_q, child_q = queue_on(0, prefix="flow-p"), queue_on(1, prefix="flow-c")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first = c.post(f"/queues/{child_q}/jobs", json={"data": 1}).json()["id"]
        second = c.post(f"/queues/{child_q}/jobs", json={"data": 2}).json()["id"]
        local = c.post(f"/queues/{parent_q}/jobs", json={"data": 3, "jobId": "local-child"}).json()["id"]
        parent = c.post(f"/queues/{parent_q}/jobs", json={"data": 0, "dependsOn": [first, second, local]}).json()["id"]
        assert c.get(f"/queues/{child_q}/jobs").json()["job"]["id"] == first
        assert c.post(f"/jobs/{first}/ack", json={"result": "r1"}).json()["ok"]
        assert c.get(f"/queues/{parent_q}/jobs").json()["job"]["id"] == local
        assert c.post(f"/jobs/{local}/ack", json={"result": "r3"}).json()["ok"]
    server.stop()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get(f"/jobs/{parent}/state").json()["state"] == "waiting-children"
        assert c.get(f"/queues/{child_q}/jobs").json()["job"]["id"] == second
        assert c.post(f"/jobs/{second}/ack", json={"result": "r2"}).json()["ok"]
        wait_until(lambda: c.get(f"/jobs/{parent}/state").json()["state"] == "waiting")
        values = c.get(f"/jobs/{parent}/children").json()["values"]
        assert values == {first: "r1", second: "r2", local: "r3"}


def test_a_shard_restart_between_child_and_parent_loses_nothing(server: BunqServer) -> None:
    import os
    import signal

    parent_q, child_q = queue_on(0, prefix="crash-p"), queue_on(1, prefix="crash-c")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        child = c.post(f"/queues/{child_q}/jobs", json={"data": 1, "durable": True}).json()["id"]
        parent = c.post(f"/queues/{parent_q}/jobs", json={"data": 0, "dependsOn": [child], "durable": True}).json()[
            "id"
        ]
        os.kill(server.children()["shard-0"], signal.SIGKILL)  # the parent's shard is down...
        assert c.get(f"/queues/{child_q}/jobs").json()["job"]["id"] == child
        assert c.post(f"/jobs/{child}/ack", json={}).json()["ok"]  # ...when its dependency completes
        server.wait_ready()
        wait_until(lambda: c.get(f"/jobs/{parent}/state").json()["state"] == "waiting", timeout=30)


def test_a_lost_lease_cannot_be_acked_but_the_new_owner_can(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        job_id = c.post("/queues/lease/jobs", json={"data": 1}).json()["id"]
        first = c.post("/queues/lease/jobs/pull-batch", json={"count": 1, "owner": "slow", "lockTtl": 300}).json()
        time.sleep(0.6)  # the slow worker's lock expires; the job goes back to waiting
        second = c.post("/queues/lease/jobs/pull-batch", json={"count": 1, "owner": "fast", "lockTtl": 30_000}).json()
        assert second["jobs"][0]["id"] == job_id and second["jobs"][0]["attempts"] == 1
        stale = c.post(f"/jobs/{job_id}/ack", json={"token": first["tokens"][0]})
        assert stale.status_code == 400 and stale.json()["ok"] is False
        assert c.post(f"/jobs/{job_id}/ack", json={"token": second["tokens"][0]}).json() == {"ok": True}


def test_group_jobs_are_never_active_two_at_a_time(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        jobs = [{"data": i, "groupId": f"g{i % 3}"} for i in range(30)]
        assert len(c.post("/queues/groups/jobs/bulk", json={"jobs": jobs}).json()["ids"]) == 30
    active: dict[str, int] = {}
    worst: dict[str, int] = {}
    lock = threading.Lock()
    done: list[int] = []

    def worker() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while len(done) < 30:
                job = c.get("/queues/groups/jobs", params={"timeout": 200}).json()["job"]
                if job is None:
                    continue
                group = job["groupId"]
                with lock:
                    active[group] = active.get(group, 0) + 1
                    worst[group] = max(worst.get(group, 0), active[group])
                time.sleep(0.01)
                with lock:
                    active[group] -= 1
                    done.append(job["data"])
                c.post(f"/jobs/{job['id']}/ack", json={})

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(done) == list(range(30))
    assert worst == {"g0": 1, "g1": 1, "g2": 1}
