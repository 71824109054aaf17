"""Queue endpoints over HTTP, against the in-process stand-in and `bunq serve`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.http import bulk, counts, ok, pull, push


def test_queues_are_listed_until_obliterated(api: Any, queue: str) -> None:
    other = queue + "-b"
    push(api, queue)
    push(api, other)
    names = ok(api.get("/queues"))["queues"]
    assert {queue, other} <= set(names) and names == sorted(names)
    ok(api.post(f"/queues/{other}/obliterate"))
    assert other not in ok(api.get("/queues"))["queues"]


def test_clearing_the_limits_of_an_unknown_queue_does_not_list_it(api: Any, queue: str) -> None:
    ok(api.delete(f"/queues/{queue}/rate-limit"))
    ok(api.delete(f"/queues/{queue}/concurrency"))
    assert queue not in ok(api.get("/queues"))["queues"]


def test_list_jobs_by_state_in_priority_order_with_paging(api: Any, queue: str) -> None:
    ids = bulk(api, queue, [{"data": i, "priority": i % 3} for i in range(9)])
    delayed = push(api, queue, delay=600_000)
    listed = ok(api.get(f"/queues/{queue}/jobs/list", params={"state": "waiting"}))["jobs"]
    assert [j["priority"] for j in listed] == [2, 2, 2, 1, 1, 1, 0, 0, 0]
    assert [j["id"] for j in listed[:3]] == [ids[2], ids[5], ids[8]]
    page = ok(api.get(f"/queues/{queue}/jobs/list", params={"state": "waiting", "limit": 2, "offset": 3}))["jobs"]
    assert [j["id"] for j in page] == [j["id"] for j in listed[3:5]]
    assert [j["id"] for j in ok(api.get(f"/queues/{queue}/jobs/list?state=delayed"))["jobs"]] == [delayed]
    first = pull(api, queue)
    assert [j["id"] for j in ok(api.get(f"/queues/{queue}/jobs/list?state=active"))["jobs"]] == [first["id"]]  # type: ignore[index]
    assert len(ok(api.get(f"/queues/{queue}/jobs/list"))["jobs"]) == 10
    bad = api.get(f"/queues/{queue}/jobs/list", params={"state": "weird"})
    assert bad.status_code == 400 and "state must be one of" in bad.json()["error"]
    both = ok(api.get(f"/queues/{queue}/jobs/list?state=delayed,active"))["jobs"]  # the reference's list form
    assert {j["id"] for j in both} == {delayed, first["id"]}  # type: ignore[index]
    repeated = ok(api.get(f"/queues/{queue}/jobs/list?state=delayed&state=active"))["jobs"]  # and repeated
    assert {j["id"] for j in repeated} == {delayed, first["id"]}  # type: ignore[index]
    assert [j["id"] for j in ok(api.get(f"/queues/{queue}/jobs/list?status=delayed"))["jobs"]] == [delayed]


def test_list_completed_and_failed(api: Any, queue: str) -> None:
    a, b = bulk(api, queue, [{"data": 1}, {"data": 2, "maxAttempts": 1}])
    pull(api, queue)
    pull(api, queue)
    ok(api.post(f"/jobs/{a}/ack", json={"result": 1}))
    ok(api.post(f"/jobs/{b}/fail", json={"error": "x"}))
    assert [j["id"] for j in ok(api.get(f"/queues/{queue}/jobs/list?state=completed"))["jobs"]] == [a]
    assert [j["id"] for j in ok(api.get(f"/queues/{queue}/jobs/list?state=failed"))["jobs"]] == [b]


def test_count_and_priority_counts(api: Any, queue: str) -> None:
    bulk(api, queue, [{"data": 0}, {"data": 1, "priority": 5}, {"data": 2, "priority": 5}, {"data": 3, "delay": 9e5}])
    assert ok(api.get(f"/queues/{queue}/count")) == {"ok": True, "count": 4}
    done, dead = bulk(api, queue + "-x", [{"data": 1}, {"data": 2, "maxAttempts": 1}])
    pull(api, queue + "-x")
    pull(api, queue + "-x")
    ok(api.post(f"/jobs/{done}/ack", json={}))
    ok(api.post(f"/jobs/{dead}/fail", json={}))
    push(api, queue + "-x")
    pull(api, queue + "-x")
    push(api, queue + "-x")
    # waiting + active + delayed, as the spec's example (192 of 150 waiting, 12 active, 30 delayed, 5000
    # completed, 3 failed): finished jobs are not counted
    assert ok(api.get(f"/queues/{queue}-x/count")) == {"ok": True, "count": 2}
    body = ok(api.get(f"/queues/{queue}/priority-counts"))
    # waiting and delayed jobs, lowest priority first (the reference's counts, the spec example's order)
    assert body == {"ok": True, "queue": queue, "counts": {"0": 2, "5": 2}}
    assert list(body["counts"]) == ["0", "5"]
    assert counts(api, queue)["prioritized"] == 2


def test_pause_blocks_pulls_and_resume_wakes_a_long_poll(api: Any, queue: str) -> None:
    push(api, queue)
    assert ok(api.get(f"/queues/{queue}/paused")) == {"ok": True, "paused": False}
    ok(api.post(f"/queues/{queue}/pause"))
    assert ok(api.get(f"/queues/{queue}/paused"))["paused"] is True
    assert pull(api, queue) is None
    assert counts(api, queue)["paused"] == 1
    ok(api.post(f"/queues/{queue}/resume"))
    assert pull(api, queue) is not None


def test_drain_removes_waiting_and_delayed_only(api: Any, queue: str) -> None:
    bulk(api, queue, [{"data": 1, "priority": 9}, {"data": 2}, {"data": 3, "delay": 600_000}])
    active = pull(api, queue)
    assert ok(api.post(f"/queues/{queue}/drain")) == {"ok": True, "count": 2}
    assert counts(api, queue) | {"waiting": 0, "delayed": 0, "active": 1} == counts(api, queue)
    assert ok(api.post(f"/jobs/{active['id']}/ack", json={}))  # type: ignore[index]


def test_obliterate_removes_everything_and_late_acks_are_no_ops(api: Any, queue: str) -> None:
    a, b, _ = bulk(api, queue, [{"data": 1, "maxAttempts": 1}, {"data": 2}, {"data": 3}])
    pull(api, queue)
    ok(api.post(f"/jobs/{a}/fail", json={}))
    active = pull(api, queue)
    assert active is not None and active["id"] == b
    ok(api.put(f"/queues/{queue}/rate-limit", json={"limit": 5}))
    ok(api.post(f"/queues/{queue}/obliterate"))
    assert ok(api.post(f"/jobs/{b}/ack", json={})) == {"ok": True}
    assert api.get(f"/jobs/{a}").status_code == 404
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 0
    assert ok(api.get(f"/queues/{queue}/stall-config"))["config"] == DEFAULT_STALL
    assert queue not in ok(api.get("/queues"))["queues"]
    assert counts(api, queue) | {"waiting": 0, "active": 0, "failed": 0} == counts(api, queue)
    push(api, queue)
    assert pull(api, queue) is not None  # the settings went with it: no rate limit left


def test_clean_removes_old_jobs_by_state(cluster: Cluster, api: Any, queue: str) -> None:
    bulk(api, queue, [{"data": i} for i in range(5)])
    cluster.advance(50)
    fresh = push(api, queue)
    body = ok(api.post(f"/queues/{queue}/clean", json={"grace": 40, "state": "waiting", "limit": 3}))
    assert body["count"] == 3 and len(body["ids"]) == 3 and fresh not in body["ids"]
    assert ok(api.post(f"/queues/{queue}/clean", json={"grace": 40, "state": "waiting"}))["count"] == 2
    assert counts(api, queue)["waiting"] == 1
    assert api.post(f"/queues/{queue}/clean", json={"state": "active"}).status_code == 400


def test_clean_completed_and_failed(cluster: Cluster, api: Any, queue: str) -> None:
    a, b = bulk(api, queue, [{"data": 1}, {"data": 2, "maxAttempts": 1}])
    pull(api, queue)
    pull(api, queue)
    ok(api.post(f"/jobs/{a}/ack", json={}))
    ok(api.post(f"/jobs/{b}/fail", json={}))
    cluster.advance(20)
    assert ok(api.post(f"/queues/{queue}/clean", json={"state": "completed"}))["count"] == 1
    assert ok(api.post(f"/queues/{queue}/clean", json={"state": "failed"}))["count"] == 1
    assert counts(api, queue) | {"completed": 0, "failed": 0} == counts(api, queue)
    assert api.get(f"/jobs/{a}").status_code == 404


def test_promote_jobs_and_retry_completed(api: Any, queue: str) -> None:
    bulk(api, queue, [{"data": i, "delay": 600_000} for i in range(3)])
    assert ok(api.post(f"/queues/{queue}/promote-jobs", json={"count": 2}))["count"] == 2
    assert ok(api.post(f"/queues/{queue}/promote-jobs", json={}))["count"] == 1
    jobs = [pull(api, queue) for _ in range(3)]
    for job in jobs:
        ok(api.post(f"/jobs/{job['id']}/ack", json={}))  # type: ignore[index]
    assert ok(api.post(f"/queues/{queue}/retry-completed", json={"id": jobs[0]["id"]}))["count"] == 1  # type: ignore[index]
    assert ok(api.post(f"/queues/{queue}/retry-completed", json={}))["count"] == 2
    assert counts(api, queue) | {"waiting": 3, "completed": 0} == counts(api, queue)


def test_dlq_retry_and_purge(api: Any, queue: str) -> None:
    ids = bulk(api, queue, [{"data": i, "maxAttempts": 1} for i in range(3)])
    for _ in ids:
        job = pull(api, queue)
        ok(api.post(f"/jobs/{job['id']}/fail", json={"error": "boom"}))  # type: ignore[index]
    dlq = ok(api.get(f"/queues/{queue}/dlq", params={"count": 2}))
    assert dlq["total"] == 3 and len(dlq["jobs"]) == 2 and len(dlq["entries"]) == 2
    assert all(e["reason"] and e["error"] == "boom" and e["enteredAt"] for e in dlq["jobs"])
    first, entry = dlq["jobs"][0], dlq["entries"][0]  # `entries` in the reference's shape
    assert entry["job"]["id"] == first["id"] and entry["reason"] == first["reason"] and entry["error"] == "boom"
    [attempt] = entry["attempts"]
    assert attempt["attempt"] == 1 and attempt["error"] == "boom" and attempt["failedAt"] == first["failedAt"]
    assert entry["retryCount"] == 0 and entry["nextRetryAt"] is None  # no auto-retry by default
    assert entry["expiresAt"] == first["enteredAt"] + 7 * 24 * 3600 * 1000  # the default maxAge
    assert ok(api.post(f"/queues/{queue}/dlq/retry", json={"jobId": ids[0]}))["count"] == 1
    retried = pull(api, queue)
    assert retried is not None and retried["id"] == ids[0] and retried["attempts"] == 0
    assert ok(api.post(f"/queues/{queue}/dlq/purge")) == {"ok": True, "count": 2}
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 0


def test_dlq_retry_of_a_count_takes_the_oldest(api: Any, queue: str) -> None:
    """ws-commands.md's `RetryDlq(jobId, count)`: at most `count` entries, in the order they were dead-lettered."""
    ids = bulk(api, queue, [{"data": i, "maxAttempts": 1} for i in range(3)])
    for _ in ids:
        job = pull(api, queue)
        ok(api.post(f"/jobs/{job['id']}/fail", json={"error": "boom"}))  # type: ignore[index]
    for bad in (0, -1, 1.5, "2"):
        assert api.post(f"/queues/{queue}/dlq/retry", json={"count": bad}).status_code == 400
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 3
    assert ok(api.post(f"/queues/{queue}/dlq/retry", json={"count": 2}))["count"] == 2
    assert [pull(api, queue)["id"] for _ in range(2)] == ids[:2]  # type: ignore[index]
    assert [j["id"] for j in ok(api.get(f"/queues/{queue}/dlq"))["jobs"]] == ids[2:]


def test_dlq_config_defaults_update_and_max_entries(api: Any, queue: str) -> None:
    push(api, queue)
    config = ok(api.get(f"/queues/{queue}/dlq-config"))["config"]
    assert config | {"autoRetry": False, "maxAge": 604_800_000, "maxEntries": 10_000} == config
    ok(api.put(f"/queues/{queue}/dlq-config", json={"config": {"maxEntries": 2}}))
    assert ok(api.get(f"/queues/{queue}/dlq-config"))["config"]["maxEntries"] == 2
    ids = bulk(api, queue, [{"data": i, "maxAttempts": 1} for i in range(3)])
    for _ in range(4):
        job = pull(api, queue)
        if job:
            ok(api.post(f"/jobs/{job['id']}/fail", json={}))
    dlq = ok(api.get(f"/queues/{queue}/dlq"))
    assert dlq["total"] == 2 and ids[-1] in {j["id"] for j in dlq["jobs"]}
    bad = api.put(f"/queues/{queue}/dlq-config", json={"config": {"maxEntries": 0}})
    assert bad.status_code == 400


def test_dlq_entries_go_once_older_than_max_age(cluster: Cluster, api: Any, queue: str) -> None:
    """maxAge is when an entry goes, not when a sweep next happens to pass (entries outlived it up to twice
    over, and by up to a minute), and a shorter maxAge applies to the entries already there."""
    ok(api.put(f"/queues/{queue}/dlq-config", json={"config": {"maxAge": 1000}}))

    def dead_letter(n: int) -> None:
        bulk(api, queue, [{"data": i, "maxAttempts": 1} for i in range(n)])
        for _ in range(n):
            job = pull(api, queue)
            ok(api.post(f"/jobs/{job['id']}/fail", json={}))  # type: ignore[index]

    dead_letter(2)
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 2
    cluster.advance(600)
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 2
    cluster.advance(700)
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 0
    ok(api.put(f"/queues/{queue}/dlq-config", json={"config": {"maxAge": 5000}}))
    dead_letter(1)
    cluster.advance(1300)
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 1
    ok(api.put(f"/queues/{queue}/dlq-config", json={"config": {"maxAge": 1000}}))
    cluster.advance(100)
    assert ok(api.get(f"/queues/{queue}/dlq"))["total"] == 0


def test_stall_config_defaults_and_update(api: Any, queue: str) -> None:
    push(api, queue)
    assert ok(api.get(f"/queues/{queue}/stall-config"))["config"] == {
        "stallInterval": 30_000, "maxStalls": 3, "gracePeriod": 5_000, "enabled": True}  # fmt: skip
    ok(api.put(f"/queues/{queue}/stall-config", json={"config": {"maxStalls": 5, "stallInterval": 1000}}))
    config = ok(api.get(f"/queues/{queue}/stall-config"))["config"]
    assert config == {"stallInterval": 1000, "maxStalls": 5, "gracePeriod": 5_000, "enabled": True}
    off = ok(api.put(f"/queues/{queue}/stall-config", json={"config": {"enabled": False}}))["config"]
    assert off["enabled"] is False and off["maxStalls"] == 5
    assert api.put(f"/queues/{queue}/stall-config", json={"enabled": "no"}).status_code == 400
    assert api.put(f"/queues/{queue}/stall-config", json={"config": {"maxStalls": -1}}).status_code == 400


def test_concurrency_limit_holds(api: Any, queue: str) -> None:
    bulk(api, queue, [{"data": i} for i in range(5)])
    ok(api.put(f"/queues/{queue}/concurrency", json={"limit": 2}))
    got = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 5}))["jobs"]
    assert len(got) == 2 and pull(api, queue) is None
    ok(api.post(f"/jobs/{got[0]['id']}/ack", json={}))
    assert pull(api, queue) is not None
    ok(api.delete(f"/queues/{queue}/concurrency"))
    assert len(ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 5}))["jobs"]) == 2


def test_rate_limit_holds_within_a_window(api: Any, queue: str) -> None:
    bulk(api, queue, [{"data": i} for i in range(10)])
    ok(api.put(f"/queues/{queue}/rate-limit", json={"limit": 3}))
    got = ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 10}))["jobs"]
    assert len(got) == 3 and pull(api, queue) is None
    ok(api.delete(f"/queues/{queue}/rate-limit"))
    assert len(ok(api.post(f"/queues/{queue}/jobs/pull-batch", json={"count": 10}))["jobs"]) == 7


DEFAULT_STALL = {"stallInterval": 30000, "maxStalls": 3, "gracePeriod": 5000, "enabled": True}
DEFAULT_DLQ = {"autoRetry": False, "autoRetryInterval": 3600000, "maxAutoRetries": 3, "maxAge": 604800000,
               "maxEntries": 10000}  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "answer"),
    [
        ("get", "count", None, {"count": 0}),
        ("get", "priority-counts", None, {"queue": "never-seen-queue", "counts": {}}),
        ("get", "paused", None, {"paused": False}),
        ("get", "jobs/list", None, {"jobs": []}),
        ("get", "dlq", None, {"jobs": [], "entries": [], "total": 0}),
        ("get", "stall-config", None, {"config": DEFAULT_STALL}),
        ("get", "dlq-config", None, {"config": DEFAULT_DLQ}),
        ("post", "drain", {}, {"count": 0}),
        ("post", "obliterate", {}, {}),
        ("post", "clean", {}, {"count": 0, "ids": []}),
        ("post", "promote-jobs", {}, {"count": 0}),
        ("post", "retry-completed", {}, {"count": 0}),
        ("post", "dlq/retry", {}, {"count": 0}),
        ("post", "dlq/purge", {}, {"count": 0}),
    ],
)
def test_a_queue_without_jobs_reads_as_its_defaults(api: Any, method: str, path: str, body: Any, answer: Any) -> None:
    """Queues are implicit: one that never had a job answers like an empty queue and is not created."""
    url = f"/queues/never-seen-queue/{path}"
    r = api.get(url) if method == "get" else api.post(url, json=body)
    assert r.status_code == 200 and r.json() == {"ok": True, **answer}
    assert "never-seen-queue" not in api.get("/queues").json()["queues"]


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("rate-limit", {"limit": 0}, "limit must be at least 1"),
        ("rate-limit", {}, "limit is required"),
        ("concurrency", {"limit": 1.5}, "limit must be an integer"),
        ("concurrency", {"limit": True}, "limit must be a number"),
    ],
)
def test_invalid_limits(api: Any, queue: str, path: str, body: Any, error: str) -> None:
    r = api.put(f"/queues/{queue}/{path}", json=body)
    assert r.status_code == 400 and r.json() == {"ok": False, "error": error}


def test_invalid_queue_name_on_queue_routes(api: Any) -> None:
    r = api.post("/queues/bad name!/pause")
    assert r.status_code == 400 and r.json()["error"] == "Queue name contains invalid characters"


@pytest.mark.parametrize("operation", ["obliterate", "drain", "clean"])
def test_bulk_removals_let_go_of_their_jobs_at_once(api: Any, queue: str, operation: str) -> None:
    """Right after the call, no job index or timer still holds the removed jobs (their delay and ttl are
    an hour away, so nothing else would have dropped them)."""

    def collections() -> dict[str, int]:
        stats: dict[str, int] = ok(api.get("/stats"))["collections"]
        return stats

    before = collections()
    jobs = [{"data": {"n": i}, "delay": 3_600_000, "ttl": 7_200_000} for i in range(1500)]
    bulk(api, queue, jobs)
    filled = collections()
    assert filled["jobIndex"] >= before["jobIndex"] + 1500
    assert filled["temporalIndexTotal"] >= before["temporalIndexTotal"] + 1500
    ok(api.post(f"/queues/{queue}/{operation}", json={"limit": 10_000} if operation == "clean" else {}))
    after = collections()
    assert after["jobIndex"] <= before["jobIndex"]
    assert after["temporalIndexTotal"] <= before["temporalIndexTotal"] + 10
