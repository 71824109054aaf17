"""The shard engine called directly: ordering, timers, retries, DLQ, persistence and recovery."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bunq import protocol as p
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import JOB, ack, call, counts, make_engine, pull, push


def test_higher_priority_first_then_fifo_and_lifo_jumps_ahead(engine: Engine) -> None:
    a = push(engine, priority=0)
    b = push(engine, priority=5)
    c = push(engine, priority=0)
    d = push(engine, priority=0, lifo=True)
    e = push(engine, priority=5, lifo=True)
    order = [j["id"] for j in pull(engine, count=10)]
    assert order == [e, b, d, a, c]


def test_delayed_job_waits_for_the_clock(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, delay=5000)
    assert pull(engine) == []
    assert counts(engine)["delayed"] == 1
    clock.advance(4999)
    engine.tick()
    assert pull(engine) == []
    clock.advance(1)
    engine.tick()
    assert [j["id"] for j in pull(engine)] == [job_id]


def test_fail_retries_with_exponential_backoff_then_dead_letters(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, max_attempts=3, backoff=1000)
    for attempt, wait in ((1, 2000), (2, 4000)):  # backoff·2^attempts
        assert [j["id"] for j in pull(engine)] == [job_id]
        assert call(engine, p.FailJob(job_id, "boom")) == p.Done()
        state = call(engine, p.GetJobState(job_id))
        assert state == p.JobState("delayed")
        clock.advance(wait - 1)
        engine.tick()
        assert pull(engine) == [], f"retry {attempt} came before its backoff"
        clock.advance(1)
        engine.tick()
    assert [j["attempts"] for j in pull(engine)] == [2]
    call(engine, p.FailJob(job_id, "final"))
    assert call(engine, p.GetJobState(job_id)) == p.JobState("failed")
    assert counts(engine)["failed"] == 1
    dlq = call(engine, p.GetDlq("q"))
    assert isinstance(dlq, p.DlqEntries) and dlq.total == 1
    entry = msgspec.json.decode(dlq.entries[0])
    assert entry["id"] == job_id and entry["attempts"] == 3 and entry["error"] == "final"


def test_retry_delay_is_capped_at_a_day(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, max_attempts=100, backoff=86_400_000)
    for _ in range(3):
        pull(engine)
        call(engine, p.FailJob(job_id, "x"))
        job = engine.jobs[job_id]
        assert job.run_at - clock.now <= 86_400_000
        clock.advance(86_400_000)
        engine.tick()


def test_ack_stores_result_and_counts_completed(engine: Engine) -> None:
    job_id = push(engine)
    pull(engine)
    assert ack(engine, job_id, b'{"ok":1}').acked == 1
    assert call(engine, p.GetJobResult(job_id)) == p.JobResult(True, b'{"ok":1}')
    assert counts(engine)["completed"] == 1
    assert ack(engine, job_id).failed == {job_id: "Job not found or not active"}


def test_remove_on_complete_and_on_fail_leave_nothing(engine: Engine) -> None:
    a = push(engine, remove_on_complete=True)
    b = push(engine, remove_on_fail=True, max_attempts=1)
    pull(engine, count=2)
    ack(engine, a, b"1")
    call(engine, p.FailJob(b, "x"))
    assert call(engine, p.GetJobState(a)) == p.JobState("unknown")
    assert call(engine, p.GetJobState(b)) == p.JobState("unknown")
    assert counts(engine)["completed"] == 0 and counts(engine)["failed"] == 0


def test_custom_job_id_is_idempotent_and_unique_key_deduplicates(engine: Engine) -> None:
    assert push(engine, job_id="order-1") == "order-1"
    assert push(engine, job_id="order-1", data=b"2") == "order-1"
    first = push(engine, unique_key="k")
    assert push(engine, unique_key="k") == first
    assert counts(engine)["waiting"] == 2


def test_cancel_active_job_makes_later_ack_fail(engine: Engine) -> None:
    job_id = push(engine)
    pull(engine)
    assert call(engine, p.CancelJob(job_id)) == p.Done()
    assert ack(engine, job_id).failed
    assert counts(engine)["active"] == 0
    assert isinstance(call(engine, p.CancelJob(job_id)), p.Error)


def test_cancel_refuses_a_finished_job_and_keeps_it(engine: Engine) -> None:
    done = push(engine)
    pull(engine)
    ack(engine, done, b'"r"')
    dead = push(engine, max_attempts=1)
    pull(engine)
    call(engine, p.FailJob(dead, "boom"))
    for job_id, state in ((done, "completed"), (dead, "failed")):
        refused = call(engine, p.CancelJob(job_id))
        assert refused == p.Error("bad_request", "Job not found or cannot be cancelled")
        reply = call(engine, p.GetJobState(job_id))
        assert isinstance(reply, p.JobState) and reply.state == state
    assert counts(engine)["completed"] == 1 and counts(engine)["failed"] == 1


def test_lock_token_is_required_and_checked(engine: Engine) -> None:
    job_id = push(engine)
    reply = call(engine, p.PullJobs("q", 1, owner="w1", lock_ttl=1000))
    assert isinstance(reply, p.Jobs) and reply.tokens[0]
    assert "Lock token required" in call(engine, p.AckJobs([job_id])).failed[job_id]  # type: ignore[union-attr]
    assert call(engine, p.AckJobs([job_id], [None], ["stale"])).failed  # type: ignore[union-attr]
    assert call(engine, p.AckJobs([job_id], [None], [reply.tokens[0]])) == p.AckOutcome(1, {})


def test_long_poll_is_answered_by_the_next_push(engine: Engine, clock: FakeClock) -> None:
    replies: list[p.Reply] = []
    engine.handle(p.PullJobs("q", 1, timeout_ms=5000), replies.append)
    assert replies == []
    job_id = push(engine)
    assert len(replies) == 1 and isinstance(replies[0], p.Jobs)
    assert msgspec.json.decode(replies[0].jobs[0])["id"] == job_id


def test_a_parked_pull_batch_gets_every_job_a_bulk_push_brings(engine: Engine, clock: FakeClock) -> None:
    replies: list[p.Reply] = []
    engine.handle(p.PullJobs("q", 5, timeout_ms=5000), replies.append)
    ids = call(engine, p.AddJobs("q", [JOB] * 4))
    assert isinstance(ids, p.Ids) and len(replies) == 1 and isinstance(replies[0], p.Jobs)
    assert [msgspec.json.decode(j)["id"] for j in replies[0].jobs] == ids.ids
    engine.handle(p.PullJobs("q", 5, timeout_ms=5000), replies.append)
    for delay in (100, 100, 200):
        push(engine, delay=delay)
    clock.advance(100)
    engine.tick()  # two delayed jobs come due together: one reply with both
    assert len(replies) == 2 and isinstance(replies[1], p.Jobs) and len(replies[1].jobs) == 2


def test_long_poll_times_out_empty_and_leaves_no_queue_behind(engine: Engine, clock: FakeClock) -> None:
    replies: list[p.Reply] = []
    engine.handle(p.PullJobs("ghost", 1, timeout_ms=1000), replies.append)
    clock.advance(1000)
    engine.tick()
    assert replies == [p.Jobs([])]
    assert "ghost" not in engine.queues


def test_obliterating_a_queue_answers_its_parked_polls_empty(engine: Engine) -> None:
    replies: list[p.Reply] = []
    engine.handle(p.PullJobs("q", 1, timeout_ms=5000), replies.append)
    call(engine, p.ObliterateQueue("q"))
    assert replies == [p.Jobs([])]
    push(engine)  # the name back in use: the poll ended with the old queue and takes nothing
    assert replies == [p.Jobs([])]


def test_durable_push_is_answered_only_after_commit(engine: Engine) -> None:
    replies: list[p.Reply] = []
    engine.handle(p.AddJobs("q", [msgspec.structs.replace(JOB, durable=True)]), replies.append)
    assert replies == []
    engine.flush()
    assert len(replies) == 1 and isinstance(replies[0], p.Ids)
    assert engine.store.get(replies[0].ids[0]) is not None


def test_restart_restores_every_state_and_charges_active_jobs(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    waiting = push(engine, priority=1)
    delayed = push(engine, delay=60_000)
    active = push(engine, priority=9, max_attempts=2)
    last_try = push(engine, priority=8, max_attempts=1)
    done = push(engine, priority=7)
    pull(engine, count=3)
    ack(engine, done, b'"r"')
    engine.flush()
    engine.store.close()

    again = make_engine(tmp_path / "s.db", clock)
    assert counts(again) == {**counts(again), "waiting": 2, "delayed": 1, "active": 0, "completed": 1, "failed": 1}
    assert call(again, p.GetJobResult(done)) == p.JobResult(True, b'"r"')
    assert call(again, p.GetJobState(last_try)) == p.JobState("failed")
    order = [j["id"] for j in pull(again, count=5)]
    assert set(order) == {waiting, active}
    assert again.jobs[active].attempts == 1
    assert call(again, p.AckJobs(order)) == p.AckOutcome(2, {})
    clock.advance(60_000)
    again.tick()
    assert [j["id"] for j in pull(again)] == [delayed]


def test_write_behind_coalesces_a_job_into_one_row(engine: Engine) -> None:
    job_id = push(engine)
    pull(engine)
    ack(engine, job_id, b"1")
    assert list(engine.journal.dirty) == [job_id]
    engine.flush()
    assert engine.journal.pending() == 0
    assert engine.store.get(job_id) is not None


def test_a_finished_lease_leaves_no_job_in_the_timers(engine: Engine, clock: FakeClock) -> None:
    """A lease's lock and timeout must not outlive it in the timers: neither the job nor its id is held
    after the ack (a busy worker's 30 s of finished jobs, or an hour's timeout of them), and the ticks
    that come due later change nothing."""
    job_id = push(engine, timeout=60_000, remove_on_complete=True)
    reply = call(engine, p.PullJobs("q", 1, owner="w1", lock_ttl=30_000))
    assert isinstance(reply, p.Jobs)
    assert len(engine.leases.locks) == 1 and len(engine.leases.timeouts) == 1
    assert call(engine, p.AckJobs([job_id], [None], [reply.tokens[0]])) == p.AckOutcome(1, {})
    held = [x for entry in engine.timers.heap for x in (entry[3] if isinstance(entry[3], tuple) else (entry[3],))]
    assert not [x for x in held if type(x).__name__ == "Job" or x == job_id]
    assert len(engine.leases.locks) == 0 and len(engine.leases.timeouts) == 0
    clock.advance(60_000)
    engine.tick()
    assert call(engine, p.GetJobState(job_id)) == p.JobState("unknown")  # removed on completion, and stays so
    assert counts(engine)["active"] == 0 and counts(engine)["waiting"] == 0


def test_a_finished_lease_leaves_no_lock_timer_behind(engine: Engine, clock: FakeClock) -> None:
    """A busy worker's acked jobs must not keep their locks' timers (and tokens) for the lock's whole time."""
    for _ in range(500):
        push(engine)
    timers_before = len(engine.timers)
    for _ in range(5):
        reply = call(engine, p.PullJobs("q", 100, owner="w", lock_ttl=30_000))
        assert isinstance(reply, p.Jobs)
        ids = [msgspec.json.decode(j)["id"] for j in reply.jobs]
        assert call(engine, p.AckJobs(ids, [None] * len(ids), reply.tokens)) == p.AckOutcome(len(ids))
        clock.advance(7)
    assert len(engine.leases.locks) == 0
    assert len(engine.timers) - timers_before <= 5  # one per tick the locks fell in, not one per job


def test_a_lock_expires_within_a_tick_of_its_time_and_a_heartbeat_moves_it(engine: Engine, clock: FakeClock) -> None:
    from shards.leases import TICK_MS as LOCK_TICK_MS

    kept, dropped = push(engine), push(engine)
    reply = call(engine, p.PullJobs("q", 2, owner="w", lock_ttl=1000))
    assert isinstance(reply, p.Jobs)
    tokens = dict(zip([msgspec.json.decode(j)["id"] for j in reply.jobs], reply.tokens, strict=True))
    clock.advance(900)
    assert call(engine, p.Heartbeat([kept], [tokens[kept]], [1000])) == p.AckOutcome(1)
    clock.advance(100 + LOCK_TICK_MS)
    engine.tick()
    assert call(engine, p.GetJobState(dropped)) == p.JobState("waiting")  # expired: back for a retry
    assert call(engine, p.GetJobState(kept)) == p.JobState("active")
    clock.advance(900 - LOCK_TICK_MS - 1)
    engine.tick()
    assert call(engine, p.GetJobState(kept)) == p.JobState("active")  # its lock now ends at 1900
    clock.advance(1 + LOCK_TICK_MS)
    engine.tick()
    assert call(engine, p.GetJobState(kept)) == p.JobState("waiting")


class TickingClock(FakeClock):
    """A millisecond passes at every read: time moving while a pull runs."""

    def __call__(self) -> int:
        self.now += 1
        return self.now


def test_a_pull_s_jobs_start_at_the_time_its_rate_limit_counted(tmp_path: Path) -> None:
    """`startedAt` is what a user checks a rate limit against: no 1 s window of it may hold more than the limit."""
    engine = make_engine(tmp_path / "s.db", TickingClock())
    for _ in range(30):
        push(engine)
    call(engine, p.SetRateLimit("q", 4))
    started: list[int] = []
    for _ in range(20_000):  # a few ms of the ticking clock each
        times = [int(j["startedAt"]) for j in pull(engine, count=3)]  # type: ignore[call-overload]
        assert len(set(times)) <= 1, "a pull's jobs started at different times"
        started += times
        if len(started) == 30:
            break
    assert len(started) == 30
    assert all(sum(1 for t in started if s - 1000 < t <= s) <= 4 for s in started)


def _priority_counts(engine: Engine, queue: str = "q") -> dict[str, int]:
    reply = call(engine, p.GetPriorityCounts(queue))
    assert isinstance(reply, p.PriorityCounts)
    return reply.counts


def test_priority_counts_cover_waiting_and_delayed_jobs_as_they_move(engine: Engine, clock: FakeClock) -> None:
    """As the reference counts: waiting and delayed jobs per priority, lowest first; not active, dependent
    or dead-lettered ones. Each move between states keeps the counts exact, without a scan."""
    push(engine, priority=5)
    push(engine, priority=0)
    later = push(engine, priority=7, delay=60_000)
    push(engine, priority=5, delay=1_000)  # due in a second
    push(engine, priority=9, depends_on=(later,))  # waiting for its dependency: not counted
    assert list(_priority_counts(engine).items()) == [("0", 1), ("5", 2), ("7", 1)]

    assert call(engine, p.ChangePriority(later, 2)) == p.Done()  # a delayed job's new priority
    assert _priority_counts(engine) == {"0": 1, "2": 1, "5": 2}

    clock.advance(1_000)
    engine.tick()  # the second one is due: delayed -> waiting, same priority
    assert _priority_counts(engine) == {"0": 1, "2": 1, "5": 2}
    assert counts(engine)["delayed"] == 1

    assert call(engine, p.PromoteJob(later)) == p.Done()
    assert _priority_counts(engine) == {"0": 1, "2": 1, "5": 2}
    assert counts(engine)["delayed"] == 0

    assert [j["priority"] for j in pull(engine, count=2)] == [5, 5]  # active jobs are not counted
    assert _priority_counts(engine) == {"0": 1, "2": 1}

    push(engine, priority=4, delay=5_000)
    assert call(engine, p.DrainQueue("q")) == p.Count(3)
    assert _priority_counts(engine) == {}
