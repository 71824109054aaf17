"""The blocking SDK client (`bunq.sdk.Client`) against a real `bunq serve`: every method, as a producer,
a worker or an operator calls it, and the exceptions it raises for the server's refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bunq.sdk import (
    AsyncClient,
    BadRequest,
    BunqError,
    Client,
    Counts,
    DlqConfig,
    Job,
    NotFound,
    RateLimited,
    Retry,
    StallConfig,
    TransportError,
    Unauthorized,
)
from tests.support.processes import BunqServer, free_port, wait_until
from tests.support.webhooks import Receiver


@pytest.fixture
def bunq(live_server: BunqServer) -> Iterator[Client]:
    with Client(live_server.url, timeout=10) as client:
        yield client


def leased(bunq: Client, queue: str, data: Any = None, **options: Any) -> tuple[str, str]:
    """Push a job and pull it with an owner: its id and lease token."""
    job_id = bunq.push(queue, data, **options)
    lease = bunq.pull(queue, owner="test-worker")
    assert lease is not None and lease.job.id == job_id and lease.token
    return job_id, lease.token


# -- push and its options --------------------------------------------------------------------------------


def test_push_returns_an_id_and_the_job_shows_every_option(bunq: Client, queue: str) -> None:
    job_id = bunq.push(
        queue,
        {"to": "a@b.c"},
        priority=7,
        max_attempts=5,
        backoff=250,
        ttl=60_000,
        timeout=30_000,
        tags=["onboarding", "eu"],
        group_id="tenant-1",
        lifo=True,
        remove_on_complete=True,
        remove_on_fail=True,
        durable=True,
        name="welcome",
    )
    job = bunq.get_job(job_id)
    assert isinstance(job, Job) and job.id == job_id and job.queue == queue
    assert job.data == {"to": "a@b.c"} and job.priority == 7 and job.name == "welcome"
    assert (job.max_attempts, job.backoff, job.ttl, job.timeout) == (5, 250, 60_000, 30_000)
    assert job.tags == ["onboarding", "eu"] and job.group_id == "tenant-1"
    assert job.lifo and job.remove_on_complete and job.remove_on_fail and job.durable
    assert job.attempts == 0 and job.state == "waiting"


def test_push_without_options_has_the_spec_defaults(bunq: Client, queue: str) -> None:
    job = bunq.get_job(bunq.push(queue, [1, 2]))
    assert job.data == [1, 2] and job.priority == 0 and (job.max_attempts, job.backoff) == (3, 1000)
    assert job.tags == [] and not job.lifo and not job.durable and job.ttl is None


def test_delay_makes_a_delayed_job_not_pulled_early(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1, delay=60_000)
    assert bunq.get_state(job_id) == "delayed"
    job = bunq.get_job(job_id)
    assert job.run_at - job.created_at >= 59_000
    assert bunq.pull(queue) is None


def test_unique_key_deduplicates(bunq: Client, queue: str) -> None:
    first = bunq.push(queue, 1, unique_key="invoice-42")
    again = bunq.push(queue, 2, unique_key="invoice-42")
    assert again == first
    assert bunq.get_job(first).unique_key == "invoice-42" and bunq.get_job(first).data == 1
    assert bunq.count(queue) == 1


def test_job_id_is_idempotent_and_found_by_custom_id(bunq: Client, queue: str) -> None:
    custom = f"order-{queue}"
    assert bunq.push(queue, {"n": 1}, job_id=custom) == custom
    assert bunq.push(queue, {"n": 2}, job_id=custom) == custom
    job = bunq.get_job_by_custom_id(custom)
    assert job.id == custom and job.data == {"n": 1} and job.custom_id == custom
    assert bunq.count(queue) == 1


def test_depends_on_waits_for_children_then_sees_their_results(bunq: Client, queue: str) -> None:
    child = bunq.push(queue, "child")
    parent = bunq.push(queue, "parent", depends_on=[child])
    assert bunq.get_state(parent) == "waiting-children"
    assert bunq.get_job(parent).depends_on == [child]
    lease = bunq.pull(queue)
    assert lease is not None and lease.job.id == child  # the parent is not available yet
    bunq.ack(child, {"resized": True})
    wait_until(lambda: bunq.get_state(parent) == "waiting", timeout=5)
    assert bunq.get_children(parent) == {child: {"resized": True}}


def test_repeat_is_kept_on_the_job(bunq: Client, queue: str) -> None:
    job = bunq.get_job(bunq.push(queue, 1, repeat={"every": 60_000, "limit": 3}))
    assert job.repeat == {"every": 60_000, "limit": 3}


def test_priority_and_lifo_order_pulls(bunq: Client, queue: str) -> None:
    low = bunq.push(queue, "low", priority=1)
    high = bunq.push(queue, "high", priority=10)
    low_lifo = bunq.push(queue, "low-lifo", priority=1, lifo=True)
    order = [lease.job.id for lease in bunq.pull_batch(queue, 3)]
    assert order == [high, low_lifo, low]


# -- bulk ------------------------------------------------------------------------------------------------


def test_push_bulk_returns_ids_in_order_with_options_in_either_spelling(bunq: Client, queue: str) -> None:
    ids = bunq.push_bulk(
        queue, [{"data": "a", "priority": 3}, {"data": "b", "max_attempts": 9}, {"data": "c", "maxAttempts": 8}]
    )
    assert len(ids) == 3 and len(set(ids)) == 3
    jobs = [bunq.get_job(i) for i in ids]
    assert [j.data for j in jobs] == ["a", "b", "c"]
    assert jobs[0].priority == 3 and jobs[1].max_attempts == 9 and jobs[2].max_attempts == 8


def test_push_bulk_with_a_bad_item_pushes_nothing(bunq: Client, queue: str) -> None:
    with pytest.raises(BadRequest) as refused:
        bunq.push_bulk(queue, [{"data": 1}, {"data": 2, "priority": "high"}, {"data": 3}])
    assert refused.value.status == 400 and "priority" in refused.value.error
    assert "jobs[1]" in refused.value.error
    assert bunq.count(queue) == 0


def test_push_bulk_item_without_data_is_refused_before_sending(bunq: Client, queue: str) -> None:
    with pytest.raises(TypeError):
        bunq.push_bulk(queue, [{"priority": 1}])
    assert bunq.count(queue) == 0


# -- pull, ack, fail, heartbeat --------------------------------------------------------------------------


def test_pull_with_owner_gives_a_token_the_ack_must_carry(bunq: Client, queue: str) -> None:
    job_id, token = leased(bunq, queue, {"x": 1})
    with pytest.raises(BadRequest) as wrong:
        bunq.ack(job_id, "nope", token="not-the-token")
    assert "lock token" in wrong.value.error
    with pytest.raises(BadRequest):
        bunq.ack(job_id, "nope")  # a leased job needs its token
    assert bunq.get_state(job_id) == "active"
    bunq.ack(job_id, {"sent": True}, token=token)
    assert bunq.get_state(job_id) == "completed"
    assert bunq.get_result(job_id) == {"sent": True}


def test_pull_without_owner_has_no_token_and_acks_plainly(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1)
    lease = bunq.pull(queue)
    assert lease is not None and lease.token is None and lease.job.state == "active"
    bunq.ack(job_id, 5)
    assert bunq.get_result(job_id) == 5
    with pytest.raises(BadRequest) as again:
        bunq.ack(job_id)
    assert again.value.error == "Job not found or not active"


def test_pull_on_an_empty_queue_is_none_and_long_polls(bunq: Client, queue: str) -> None:
    assert bunq.pull(queue) is None
    assert bunq.pull_batch(queue, 5) == []
    started = time.monotonic()
    assert bunq.pull(queue, timeout=300) is None
    assert time.monotonic() - started >= 0.25


def test_pull_long_poll_returns_a_job_pushed_while_waiting(bunq: Client, queue: str, live_server: BunqServer) -> None:
    with ThreadPoolExecutor(1) as pool, Client(live_server.url) as other:
        pulling = pool.submit(bunq.pull, queue, 5_000)
        time.sleep(0.1)
        job_id = other.push(queue, "late")
        lease = pulling.result(timeout=5)
    assert lease is not None and lease.job.id == job_id


def test_pull_batch_with_owner_gives_one_token_per_job(bunq: Client, queue: str) -> None:
    ids = bunq.push_bulk(queue, [{"data": i} for i in range(4)])
    leases = bunq.pull_batch(queue, 3, owner="w1", lock_ttl=10_000)
    assert [lease.job.id for lease in leases] == ids[:3]
    tokens = [lease.token for lease in leases]
    assert all(tokens) and len(set(tokens)) == 3
    result = bunq.ack_batch([lease.job.id for lease in leases], [0, 1, 2], tokens)
    assert result.count == 3 and result.failed == {}
    assert [bunq.get_result(i) for i in ids[:3]] == [0, 1, 2]
    assert bunq.get_state(ids[3]) == "waiting"


def test_ack_batch_partial_failure_names_each_refused_id(bunq: Client, queue: str) -> None:
    leases = [bunq.pull(queue, owner="w") for _ in bunq.push_bulk(queue, [{"data": 1}, {"data": 2}])]
    good, bad = (lease for lease in leases if lease is not None)
    assert good.token is not None
    missing = f"missing-{queue}"
    result = bunq.ack_batch([good.job.id, missing, bad.job.id], ["a", "b", "c"], [good.token, None, "forged"])
    assert result.count == 1
    assert set(result.failed) == {missing, bad.job.id}
    assert result.failed[missing] == "Job not found"
    assert "lock token" in result.failed[bad.job.id]
    assert bunq.get_state(good.job.id) == "completed" and bunq.get_state(bad.job.id) == "active"


def test_fail_retries_then_dead_letters(bunq: Client, queue: str) -> None:
    job_id, token = leased(bunq, queue, {"n": 1}, max_attempts=2, backoff=0)
    bunq.fail(job_id, "SMTP refused", token=token)
    retried = bunq.pull(queue, timeout=2_000, owner="test-worker")
    assert retried is not None and retried.job.id == job_id and retried.job.attempts == 1
    assert retried.token is not None and retried.token != token
    bunq.fail(job_id, "still refused", token=retried.token)
    assert bunq.get_state(job_id) == "failed"
    [entry] = bunq.dlq(queue)
    assert entry.id == job_id and entry.error == "still refused" and entry.attempts == 2 and entry.data == {"n": 1}
    assert entry.reason and bunq.counts(queue).failed == 1


def test_fail_with_a_wrong_token_is_refused(bunq: Client, queue: str) -> None:
    job_id, _ = leased(bunq, queue)
    with pytest.raises(BadRequest):
        bunq.fail(job_id, "x", token="forged")
    assert bunq.get_state(job_id) == "active"


def test_heartbeat_and_heartbeat_batch(bunq: Client, queue: str) -> None:
    job_id, token = leased(bunq, queue)
    before = bunq.get_job(job_id).last_heartbeat
    assert before is not None
    time.sleep(0.01)
    bunq.heartbeat(job_id, token=token, duration=20_000)
    after = bunq.get_job(job_id).last_heartbeat
    assert after is not None and after > before
    with pytest.raises(BadRequest):
        bunq.heartbeat(job_id, token="forged")
    with pytest.raises(BadRequest, match="Job not found or not active"):
        bunq.heartbeat(f"missing-{queue}")
    missing = f"missing-{queue}"
    result = bunq.heartbeat_batch([job_id, missing], [token, None], [20_000, 20_000])
    assert result.count == 1 and set(result.failed) == {missing}


# -- looking at and changing a job -----------------------------------------------------------------------


def test_missing_job_raises_not_found_with_the_servers_error(bunq: Client, queue: str) -> None:
    missing = f"missing-{queue}"
    with pytest.raises(NotFound) as found:
        bunq.get_job(missing)
    assert found.value.error == "Job not found" and found.value.status == 404
    assert found.value.body == {"ok": False, "error": "Job not found"}
    assert isinstance(found.value, BunqError)
    for call in (bunq.get_result, bunq.get_progress, bunq.cancel, bunq.get_job_by_custom_id):
        with pytest.raises(NotFound):
            call(missing)
    with pytest.raises(NotFound):
        bunq.wait(missing, 100)


def test_state_of_an_unknown_job_is_unknown(bunq: Client, queue: str) -> None:
    assert bunq.get_state(f"missing-{queue}") == "unknown"


def test_wait_returns_the_result_when_the_job_completes(bunq: Client, queue: str, live_server: BunqServer) -> None:
    job_id = bunq.push(queue, 1)
    with ThreadPoolExecutor(1) as pool, Client(live_server.url) as worker:
        waiting = pool.submit(bunq.wait, job_id, 10_000)
        time.sleep(0.1)
        assert not waiting.done()
        lease = worker.pull(queue)
        assert lease is not None
        worker.ack(job_id, {"total": 3})
        done = waiting.result(timeout=5)
    assert done.completed and done.result == {"total": 3}
    assert bunq.wait(job_id, 100).result == {"total": 3}  # already completed: at once


def test_wait_times_out_on_a_job_that_does_not_complete(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1)
    started = time.monotonic()
    result = bunq.wait(job_id, 300)
    assert not result.completed and result.result is None
    assert 0.25 <= time.monotonic() - started < 5


def test_cancel_removes_a_waiting_job(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1)
    bunq.cancel(job_id)
    assert bunq.pull(queue) is None
    assert bunq.count(queue) == 0
    with pytest.raises(NotFound):
        bunq.get_job(job_id)


def test_progress_and_logs_of_a_leased_job(bunq: Client, queue: str) -> None:
    job_id, token = leased(bunq, queue)
    assert bunq.get_progress(job_id).progress == 0
    with pytest.raises(BadRequest):
        bunq.progress(job_id, 10, token="not-the-token")  # a leased job's progress refuses a wrong token
    bunq.progress(job_id, 20)  # and needs none (the spec's body has no token)
    assert bunq.get_progress(job_id).progress == 20
    bunq.progress(job_id, 40, "resizing", token=token)
    progress = bunq.get_progress(job_id)
    assert (progress.progress, progress.message) == (40, "resizing")
    assert bunq.get_job(job_id).progress == 40
    with pytest.raises(BadRequest) as out_of_range:
        bunq.progress(job_id, 101, token=token)
    assert "progress" in out_of_range.value.error
    bunq.log(job_id, "connecting")
    bunq.log(job_id, "slow server", "warn")
    logs = bunq.get_logs(job_id)
    assert [(entry.level, entry.message) for entry in logs] == [("info", "connecting"), ("warn", "slow server")]
    assert all(entry.timestamp > 0 for entry in logs)
    bunq.clear_logs(job_id)
    assert bunq.get_logs(job_id) == []


def test_progress_of_an_unleased_job(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1)
    assert bunq.pull(queue) is not None
    bunq.progress(job_id, 75)
    assert bunq.get_progress(job_id).progress == 75


def test_update_data_priority_and_delay(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, {"v": 1}, delay=60_000)
    bunq.update_data(job_id, {"v": 2})
    bunq.update_priority(job_id, 42)
    bunq.update_delay(job_id, 120_000)
    job = bunq.get_job(job_id)
    assert job.data == {"v": 2} and job.priority == 42
    assert job.run_at - int(time.time() * 1000) > 100_000


def test_update_priority_of_an_active_job_is_refused(bunq: Client, queue: str) -> None:
    job_id, _ = leased(bunq, queue)
    with pytest.raises(BadRequest) as refused:
        bunq.update_priority(job_id, 1)
    assert refused.value.error == "Cannot change the priority of an active job"


def test_promote_makes_a_delayed_job_waiting(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1, delay=60_000)
    bunq.promote(job_id)
    assert bunq.get_state(job_id) == "waiting"
    with pytest.raises(BadRequest) as refused:
        bunq.promote(job_id)
    assert refused.value.error == "Job not found or not delayed"
    lease = bunq.pull(queue)
    assert lease is not None and lease.job.id == job_id


def test_update_delay_delays_a_waiting_job_and_refuses_an_active_one(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1)
    bunq.update_delay(job_id, 60_000)  # as the reference: a waiting job is delayed
    assert bunq.get_state(job_id) == "delayed"
    bunq.promote(job_id)
    assert bunq.pull(queue) is not None
    with pytest.raises(BadRequest):
        bunq.update_delay(job_id, 1_000)  # active: move_to_delayed is its operation


def test_move_to_delayed_puts_an_active_job_back(bunq: Client, queue: str) -> None:
    job_id, token = leased(bunq, queue)
    with pytest.raises(BadRequest):
        bunq.move_to_delayed(job_id, 60_000, token="forged")
    bunq.move_to_delayed(job_id, 60_000, token=token)
    assert bunq.get_state(job_id) == "delayed"
    assert bunq.pull(queue) is None
    plain = bunq.push(queue, 2)
    assert bunq.pull(queue) is not None
    bunq.move_to_delayed(plain, 60_000)
    assert bunq.counts(queue).delayed == 2


def test_discard_sends_a_job_straight_to_the_dlq(bunq: Client, queue: str) -> None:
    waiting = bunq.push(queue, "w", max_attempts=10)
    bunq.discard(waiting)
    active, token = leased(bunq, queue, "a")
    bunq.discard(active, token=token)
    assert bunq.get_state(waiting) == "failed" and bunq.get_state(active) == "failed"
    assert {entry.id for entry in bunq.dlq(queue)} == {waiting, active}
    with pytest.raises(BadRequest):
        bunq.discard(waiting)  # already there


# -- queues ----------------------------------------------------------------------------------------------


def test_queues_lists_a_pushed_queue(bunq: Client, queue: str) -> None:
    bunq.push(queue, 1)
    assert queue in bunq.queues()


def test_list_jobs_by_state_with_limit_and_offset(bunq: Client, queue: str) -> None:
    ids = bunq.push_bulk(queue, [{"data": i} for i in range(5)])
    delayed = bunq.push(queue, "later", delay=60_000)
    assert [j.id for j in bunq.list_jobs(queue, "waiting")] == ids
    assert [j.id for j in bunq.list_jobs(queue, "waiting", limit=2)] == ids[:2]
    assert [j.id for j in bunq.list_jobs(queue, "waiting", limit=2, offset=2)] == ids[2:4]
    assert [j.id for j in bunq.list_jobs(queue, "delayed")] == [delayed]
    assert {j.id for j in bunq.list_jobs(queue)} == {*ids, delayed}
    with pytest.raises(BadRequest) as bad_state:
        bunq.list_jobs(queue, "sleeping")
    assert "state" in bad_state.value.error


def test_counts_count_and_priority_counts(bunq: Client, queue: str) -> None:
    bunq.push_bulk(queue, [{"data": 1, "priority": 5}, {"data": 2, "priority": 5}, {"data": 3}])
    bunq.push(queue, 4, delay=60_000)
    lease = bunq.pull(queue)
    assert lease is not None
    bunq.ack(lease.job.id)
    counts = bunq.counts(queue)
    assert isinstance(counts, Counts)
    assert (counts.waiting, counts.delayed, counts.active, counts.completed) == (2, 1, 0, 1)
    assert bunq.count(queue) == 3  # still to finish: the completed one is not counted
    assert bunq.priority_counts(queue) == {5: 1, 0: 2}  # of the waiting and delayed jobs


def test_pause_and_resume(bunq: Client, queue: str) -> None:
    bunq.push(queue, 1)
    assert bunq.is_paused(queue) is False
    bunq.pause(queue)
    assert bunq.is_paused(queue) is True
    assert bunq.pull(queue) is None
    bunq.resume(queue)
    assert bunq.is_paused(queue) is False
    assert bunq.pull(queue) is not None


def test_drain_removes_waiting_and_delayed_but_not_active(bunq: Client, queue: str) -> None:
    active, _ = leased(bunq, queue)
    bunq.push_bulk(queue, [{"data": 1}, {"data": 2}])
    bunq.push(queue, 3, delay=60_000)
    assert bunq.drain(queue) == 3
    assert bunq.get_state(active) == "active"
    counts = bunq.counts(queue)
    assert (counts.waiting, counts.delayed, counts.active) == (0, 0, 1)


def test_clean_removes_jobs_by_state_up_to_a_limit(bunq: Client, queue: str) -> None:
    bunq.push_bulk(queue, [{"data": i} for i in range(3)])
    delayed = bunq.push(queue, "d", delay=60_000)
    assert bunq.clean(queue, 0, "waiting", limit=2) == 2
    assert bunq.counts(queue).waiting == 1
    assert bunq.clean(queue, 60_000, "delayed") == 0  # younger than the grace
    assert bunq.get_state(delayed) == "delayed"
    assert bunq.clean(queue, 0, "delayed") == 1


def test_obliterate_removes_the_queue_and_its_jobs(bunq: Client, queue: str) -> None:
    job_id = bunq.push(queue, 1)
    bunq.push(queue, 2, delay=60_000)
    bunq.obliterate(queue)
    assert queue not in bunq.queues()
    assert bunq.count(queue) == 0
    with pytest.raises(NotFound):
        bunq.get_job(job_id)


def test_promote_jobs_promotes_delayed_jobs(bunq: Client, queue: str) -> None:
    ids = [bunq.push(queue, i, delay=60_000) for i in range(3)]
    assert bunq.promote_jobs(queue, 2) == 2
    assert bunq.promote_jobs(queue) == 1
    assert {bunq.get_state(i) for i in ids} == {"waiting"}


def test_retry_completed_requeues_completed_jobs(bunq: Client, queue: str) -> None:
    ids = bunq.push_bulk(queue, [{"data": 1}, {"data": 2}])
    for lease in bunq.pull_batch(queue, 2):
        bunq.ack(lease.job.id)
    assert bunq.retry_completed(queue, ids[0]) == 1
    assert bunq.get_state(ids[0]) == "waiting" and bunq.get_state(ids[1]) == "completed"
    assert bunq.retry_completed(queue) == 1
    assert bunq.get_state(ids[1]) == "waiting"


def test_concurrency_limit_set_and_clear(bunq: Client, queue: str) -> None:
    bunq.push_bulk(queue, [{"data": i} for i in range(5)])
    bunq.set_concurrency(queue, 2)
    assert len(bunq.pull_batch(queue, 5)) == 2
    assert bunq.pull_batch(queue, 5) == []
    bunq.clear_concurrency(queue)
    assert len(bunq.pull_batch(queue, 5)) == 3


def test_rate_limit_set_and_clear(bunq: Client, queue: str) -> None:
    bunq.push_bulk(queue, [{"data": i} for i in range(5)])
    bunq.set_rate_limit(queue, 1)
    assert len(bunq.pull_batch(queue, 5)) == 1
    assert bunq.pull_batch(queue, 5) == []
    bunq.clear_rate_limit(queue)
    assert len(bunq.pull_batch(queue, 5)) == 4


def test_stall_config_get_and_set(bunq: Client, queue: str) -> None:
    assert bunq.stall_config(queue) == StallConfig()  # the spec's defaults
    wanted = StallConfig(stall_interval=1_000, max_stalls=2, grace_period=100)
    assert bunq.set_stall_config(queue, wanted) == wanted
    assert bunq.stall_config(queue) == wanted


def test_dlq_config_get_and_set(bunq: Client, queue: str) -> None:
    assert bunq.dlq_config(queue) == DlqConfig()
    wanted = DlqConfig(auto_retry=True, auto_retry_interval=60_000, max_auto_retries=2, max_entries=50)
    assert bunq.set_dlq_config(queue, wanted) == wanted
    assert bunq.dlq_config(queue) == wanted


# -- dead letter queue -----------------------------------------------------------------------------------


def test_dlq_retry_one_then_all_then_purge(bunq: Client, queue: str) -> None:
    ids = bunq.push_bulk(queue, [{"data": i} for i in range(3)])
    for job_id in ids:
        bunq.discard(job_id)
    entries = bunq.dlq(queue)
    assert {e.id for e in entries} == set(ids) and all(e.reason == "discarded" for e in entries)
    assert [e.id for e in bunq.dlq(queue, count=2)] == [e.id for e in entries[:2]]
    assert bunq.retry_dlq(queue, ids[0]) == 1
    assert bunq.get_state(ids[0]) == "waiting"
    assert {e.id for e in bunq.dlq(queue)} == set(ids[1:])
    assert bunq.retry_dlq(queue) == 2
    assert bunq.dlq(queue) == [] and {bunq.get_state(i) for i in ids} == {"waiting"}
    for lease in bunq.pull_batch(queue, 3):
        bunq.discard(lease.job.id)
    assert bunq.purge_dlq(queue) == 3
    assert bunq.dlq(queue) == []


# -- crons, webhooks, workers ----------------------------------------------------------------------------


def test_crons_add_get_list_delete(bunq: Client, queue: str) -> None:
    name = f"cron-{queue}"
    cron = bunq.add_cron(name, queue, {"task": "cleanup"}, repeat_every=60_000, priority=3, max_limit=5)
    assert (cron.name, cron.queue, cron.data, cron.repeat_every) == (name, queue, {"task": "cleanup"}, 60_000)
    assert cron.priority == 3 and cron.max_limit == 5 and cron.next_run is not None
    assert bunq.get_cron(name) == cron
    assert name in {c.name for c in bunq.crons()}
    replaced = bunq.add_cron(name, queue, schedule="0 2 * * *", timezone="Europe/Paris")
    assert (replaced.schedule, replaced.repeat_every, replaced.timezone) == ("0 2 * * *", None, "Europe/Paris")
    bunq.delete_cron(name)
    assert name not in {c.name for c in bunq.crons()}
    with pytest.raises(NotFound) as gone:
        bunq.get_cron(name)
    assert gone.value.error == "Cron job not found"


def test_cron_needs_a_schedule_or_an_interval(bunq: Client, queue: str) -> None:
    with pytest.raises(BadRequest) as refused:
        bunq.add_cron(f"cron-{queue}", queue, 1)
    assert "schedule" in refused.value.error


def test_webhooks_add_list_enable_delete_and_deliver(bunq: Client, queue: str) -> None:
    receiver = Receiver()
    try:
        hook = bunq.add_webhook(receiver.url, ["completed"], queue=queue, secret="whsec_test")
        assert hook.id and hook.url == receiver.url and hook.events == ["completed"] and hook.queue == queue
        assert hook.enabled
        assert hook.id in {h.id for h in bunq.webhooks()}
        bunq.set_webhook_enabled(hook.id, False)
        assert [h.enabled for h in bunq.webhooks() if h.id == hook.id] == [False]
        bunq.set_webhook_enabled(hook.id, True)
        job_id = bunq.push(queue, 1)
        assert bunq.pull(queue) is not None
        bunq.ack(job_id, "done")
        wait_until(lambda: receiver.deliveries, timeout=10)
        assert job_id.encode() in receiver.deliveries[0][1]
        bunq.delete_webhook(hook.id)
        assert hook.id not in {h.id for h in bunq.webhooks()}
        with pytest.raises(NotFound):
            bunq.delete_webhook(hook.id)
    finally:
        receiver.close()


def test_webhook_to_a_private_address_is_refused(bunq: Client) -> None:
    with pytest.raises(BadRequest) as refused:
        bunq.add_webhook("http://10.1.2.3/hook", ["completed"])
    assert refused.value.error.startswith("Webhook URL cannot point to private IP (10.1.2.3 is in 10.0.0.0/8")


def test_workers_register_list_heartbeat_unregister(bunq: Client, queue: str) -> None:
    worker = bunq.register_worker(f"w-{queue}", [queue], concurrency=4, hostname="host-1", pid=1234)
    assert worker.id and worker.name == f"w-{queue}" and worker.queues == [queue]
    assert (worker.concurrency, worker.hostname, worker.pid) == (4, "host-1", 1234)
    assert worker.id in {w.id for w in bunq.workers()}
    seen = worker.last_seen
    assert seen is not None
    time.sleep(0.01)
    bunq.worker_heartbeat(worker.id)
    [listed] = [w for w in bunq.workers() if w.id == worker.id]
    assert listed.last_seen is not None and listed.last_seen > seen
    bunq.unregister_worker(worker.id)
    assert worker.id not in {w.id for w in bunq.workers()}
    with pytest.raises(NotFound):
        bunq.worker_heartbeat(worker.id)


# -- monitoring ------------------------------------------------------------------------------------------


def test_health_ping_stats_metrics(bunq: Client, queue: str) -> None:
    before = bunq.metrics()["totalPushed"]
    bunq.push(queue, 1)
    assert bunq.ping() is True
    health = bunq.health()
    assert health["ok"] is True and health["status"] == "healthy"
    stats = bunq.stats()
    assert stats["ok"] is True and stats["stats"]["totalPushed"] >= before + 1
    assert bunq.metrics()["totalPushed"] >= before + 1


# -- errors ----------------------------------------------------------------------------------------------


def test_bad_input_raises_bad_request_with_the_servers_message(bunq: Client, queue: str) -> None:
    with pytest.raises(BadRequest) as bad_name:
        bunq.push("no spaces allowed", 1)
    assert bad_name.value.error == "Queue name contains invalid characters" and bad_name.value.status == 400
    with pytest.raises(BadRequest) as bad_priority:
        bunq.push(queue, 1, priority=10**9)
    assert bad_priority.value.error == "priority must be at most 1000000"
    with pytest.raises(BadRequest) as bad_count:
        bunq.pull_batch(queue, 0)
    assert bad_count.value.error == "count must be at least 1"
    assert bunq.count(queue) == 0


class CountingRetry(Retry):
    """A retry policy that records each decision it makes."""

    def __init__(self, attempts: int, base_s: float = 0.001, cap_s: float = 0.01) -> None:
        super().__init__(attempts=attempts, base_s=base_s, cap_s=cap_s)
        self.decisions: list[float | None] = []

    def delay(self, attempt: int, error: BunqError, safe: bool, sent: bool, retry_after: str | None) -> float | None:
        decision = super().delay(attempt, error, safe, sent, retry_after)
        self.decisions.append(decision)
        return decision


def test_closed_port_raises_transport_error_at_once_without_retries() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", retry=Retry(attempts=1)) as client:
        started = time.monotonic()
        with pytest.raises(TransportError) as unreachable:
            client.ping()
    assert unreachable.value.status == 0 and "ConnectError" in unreachable.value.error
    assert time.monotonic() - started < 2


def test_refused_connection_is_retried_a_bounded_number_of_times() -> None:
    retry = CountingRetry(attempts=3)
    with Client(f"http://127.0.0.1:{free_port()}", retry=retry) as client, pytest.raises(TransportError):
        client.push("q", 1)  # not safe to repeat, but a refused connection sent nothing
    assert len(retry.decisions) == 3
    assert retry.decisions[-1] is None and all(d is not None for d in retry.decisions[:-1])


def test_a_refusal_is_not_retried(bunq: Client, queue: str) -> None:
    retry = CountingRetry(attempts=5)
    bunq.retry = retry
    with pytest.raises(NotFound):
        bunq.get_job(f"missing-{queue}")
    assert retry.decisions == [None]


# -- servers with auth and an HTTP rate limit ------------------------------------------------------------


def test_without_a_token_calls_raise_unauthorized(auth_server: BunqServer) -> None:
    for token in (None, "wrong"):
        with Client(auth_server.url, token=token) as client:
            with pytest.raises(Unauthorized) as refused:
                client.push("q", 1)
            assert refused.value.status == 401 and refused.value.error == "Unauthorized"
            assert client.health()["status"] == "healthy"  # the probe needs no token


def test_with_a_token_calls_work(auth_server: BunqServer) -> None:
    for token in ("secret", "other"):
        with Client(auth_server.url, token=token) as client:
            job_id = client.push("q", {"token": token})
            assert client.get_job(job_id).data == {"token": token}
            assert client.ping() is True


def test_events_without_a_token_raise_unauthorized(auth_server: BunqServer) -> None:
    with Client(auth_server.url) as client, pytest.raises(Unauthorized) as refused:
        next(iter(client.events("q", ["job:*"])))
    assert refused.value.status == 401

    async def main() -> None:
        async with AsyncClient(auth_server.url, token="wrong") as client:
            stream = client.events("q", ["job:*"])
            try:
                with pytest.raises(Unauthorized):
                    await asyncio.wait_for(anext(stream), 10)
            finally:
                await stream.aclose()

    asyncio.run(main())


def test_events_with_a_token_yield_events(auth_server: BunqServer) -> None:
    with Client(auth_server.url, token="secret") as client:
        stream = client.events("authed", ["job:pushed"])
        pushed: list[str] = []
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(next, stream)
            deadline = time.monotonic() + 10
            while not first.done() and time.monotonic() < deadline:
                pushed.append(client.push("authed", 1))
                time.sleep(0.1)
            event = first.result(timeout=1)
        stream.close()
    assert event.event == "job:pushed" and event.job_id in pushed


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    data = tmp_path_factory.mktemp("limited") / "data"
    server = BunqServer(data, shards=2, RATE_LIMIT_MAX_REQUESTS="5", RATE_LIMIT_WINDOW_MS="1000")
    try:
        yield server.start()
    finally:
        server.stop()


def test_over_the_rate_limit_without_retries_raises_rate_limited(limited_server: BunqServer) -> None:
    with Client(limited_server.url, retry=Retry(attempts=1)) as client, pytest.raises(RateLimited) as limited:
        for n in range(20):
            client.push("limited-once", n)
    assert limited.value.status == 429 and limited.value.error == "Rate limit exceeded"


def test_a_rate_limited_push_is_retried_until_it_succeeds(limited_server: BunqServer) -> None:
    retry = CountingRetry(attempts=6, base_s=0.2, cap_s=5.0)
    with Client(limited_server.url, retry=retry) as client:
        ids = [client.push("limited-retried", n) for n in range(8)]  # over 5 a second: some are refused first
        assert len(set(ids)) == 8
        assert any(decision is not None for decision in retry.decisions)
        # a 429 is refused before anything is done: retrying it pushed each job once
        assert client.count("limited-retried") == 8
