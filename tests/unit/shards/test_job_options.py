"""Push options and job operations in the engine, on a fake clock: ttl, timeout, locks, stalls, groups,
dependencies across shards, repeat, and every per-job operation."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bunq import protocol as p
from bunq.routing import new_job_id, shard_of_slot, slot_of
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import ack, call, counts, make_engine, pull, push


def state(engine: Engine, job_id: str) -> str:
    reply = call(engine, p.GetJobState(job_id))
    assert isinstance(reply, p.JobState)
    return reply.state


def dlq_reasons(engine: Engine, queue: str = "q") -> list[str]:
    reply = call(engine, p.GetDlq(queue))
    assert isinstance(reply, p.DlqEntries)
    return [msgspec.json.decode(e)["reason"] for e in reply.entries]


def test_ttl_expires_a_job_that_was_not_started(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, ttl=1000)
    kept = push(engine, ttl=5000)
    clock.advance(1000)
    engine.tick()
    assert state(engine, job_id) == "unknown"  # discarded
    assert [j["id"] for j in pull(engine, count=5)] == [kept]


def test_ttl_checked_at_pull_even_before_the_timer(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, ttl=10)
    clock.advance(10)
    assert pull(engine) == []
    assert state(engine, job_id) == "unknown"
    assert counts(engine)["waiting"] == 0


def test_timeout_charges_an_attempt_and_retries_with_backoff(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, timeout=5000, backoff=1000, max_attempts=2)
    pull(engine)
    clock.advance(5000)
    engine.tick()
    assert state(engine, job_id) == "delayed"
    assert engine.jobs[job_id].attempts == 1
    clock.advance(1999)
    engine.tick()
    assert state(engine, job_id) == "delayed"  # backoff·2^attempts: 2 s after the first
    clock.advance(1)
    engine.tick()
    pull(engine)
    clock.advance(5000)
    engine.tick()
    assert state(engine, job_id) == "failed"


def test_lock_expiry_requeues_and_a_stale_token_cannot_ack(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine)
    first = call(engine, p.PullJobs("q", 1, owner="w1", lock_ttl=1000))
    assert isinstance(first, p.Jobs)
    clock.advance(1000)
    engine.tick()
    assert state(engine, job_id) == "waiting" and engine.jobs[job_id].attempts == 1
    second = call(engine, p.PullJobs("q", 1, owner="w2", lock_ttl=1000))
    assert isinstance(second, p.Jobs) and second.tokens[0] != first.tokens[0]
    stale = call(engine, p.AckJobs([job_id], [None], [first.tokens[0]]))
    assert isinstance(stale, p.AckOutcome) and stale.acked == 0
    assert call(engine, p.AckJobs([job_id], [None], [second.tokens[0]])) == p.AckOutcome(1, {})


def test_heartbeat_extends_the_lock(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine)
    reply = call(engine, p.PullJobs("q", 1, owner="w", lock_ttl=1000))
    assert isinstance(reply, p.Jobs)
    token = reply.tokens[0]
    for _ in range(5):
        clock.advance(900)
        engine.tick()
        assert call(engine, p.Heartbeat([job_id], [token], [1000])) == p.AckOutcome(1, {})
    assert state(engine, job_id) == "active"
    refused = call(engine, p.Heartbeat([job_id], ["other"], [1000]))
    assert isinstance(refused, p.AckOutcome) and refused.failed


def test_stalled_job_is_retried_then_dead_lettered_after_max_stalls(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine, max_attempts=10)
    for stall in range(1, 4):
        assert [j["id"] for j in pull(engine)] == [job_id]
        clock.advance(30_000)
        engine.tick()
        clock.advance(30_000)
        engine.tick()
        assert engine.jobs[job_id].stall_count == stall
    assert state(engine, job_id) == "failed"
    assert dlq_reasons(engine) == ["stalled"]


def test_heartbeats_keep_a_job_from_stalling(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine)
    pull(engine)
    for _ in range(10):
        clock.advance(20_000)
        call(engine, p.Heartbeat([job_id]))
        engine.tick()
    assert state(engine, job_id) == "active"


def test_stall_detection_turned_off_leaves_a_silent_job_active_until_turned_on(
    engine: Engine, clock: FakeClock
) -> None:
    job_id = push(engine)
    pull(engine)
    reply = call(engine, p.SetStallConfig("q", enabled=False))
    assert isinstance(reply, p.QueueConfig) and reply.stall.enabled is False
    for _ in range(4):
        clock.advance(30_000)
        engine.tick()
    assert state(engine, job_id) == "active" and engine.jobs[job_id].stall_count == 0
    call(engine, p.SetStallConfig("q", enabled=True))
    for _ in range(2):
        clock.advance(30_000)
        engine.tick()
    assert engine.jobs[job_id].stall_count == 1


def test_group_jobs_are_handed_out_one_at_a_time(engine: Engine) -> None:
    a1 = push(engine, group_id="a")
    a2 = push(engine, group_id="a")
    b1 = push(engine, group_id="b")
    plain = push(engine)
    first = [j["id"] for j in pull(engine, count=10)]
    assert first == [a1, b1, plain]
    assert pull(engine) == []
    ack(engine, a1)
    assert [j["id"] for j in pull(engine)] == [a2]


def test_group_turn_passes_on_fail_and_cancel(engine: Engine) -> None:
    a1 = push(engine, group_id="a", backoff=0)
    a2 = push(engine, group_id="a")
    pull(engine)
    call(engine, p.FailJob(a1, "x"))  # the retry goes to the back of the queue
    assert [j["id"] for j in pull(engine, count=5)] == [a2]
    call(engine, p.CancelJob(a2))
    assert [j["id"] for j in pull(engine)] == [a1]


def two_shards(tmp_path: Path, clock: FakeClock) -> list[Engine]:
    return [make_engine(tmp_path / f"s{i}.db", clock, shard=i, shards=2) for i in range(2)]


def deliver(engines: list[Engine]) -> None:
    while any(e.outgoing for e in engines):
        for engine in engines:
            outgoing, engine.outgoing = engine.outgoing, []
            for shard, command, on_reply in outgoing:
                engines[shard].handle(command, on_reply)


def queue_on(shard: int) -> str:
    return next(f"q{i}" for i in range(1000) if shard_of_slot(slot_of(f"q{i}", 256), 2) == shard)


def test_dependencies_across_shards(tmp_path: Path, clock: FakeClock) -> None:
    engines = two_shards(tmp_path, clock)
    qa, qb = queue_on(0), queue_on(1)
    child1 = push(engines[1], qb)
    child2 = push(engines[0], qa, job_id="custom-child")
    parent = push(engines[0], qa, depends_on=[child1, "custom-child"], priority=10)
    deliver(engines)
    assert state(engines[0], parent) == "waiting-children"
    assert [j["id"] for j in pull(engines[0], qa)] == [child2]
    ack(engines[0], child2, b'"two"')
    deliver(engines)
    assert state(engines[0], parent) == "waiting-children"
    pull(engines[1], qb)
    ack(engines[1], child1, b'"one"')
    deliver(engines)
    assert state(engines[0], parent) == "waiting"
    children = call(engines[0], p.GetChildren(parent))
    assert children == p.ChildrenValues({child1: b'"one"', "custom-child": b'"two"'})


def test_dependency_completed_before_the_push_counts(tmp_path: Path, clock: FakeClock) -> None:
    engines = two_shards(tmp_path, clock)
    qa, qb = queue_on(0), queue_on(1)
    child = push(engines[1], qb)
    pull(engines[1], qb)
    ack(engines[1], child, b"1")
    parent = push(engines[0], qa, depends_on=[child])
    deliver(engines)
    assert state(engines[0], parent) == "waiting"


def test_dependency_in_the_dlq_fails_the_waiting_job(tmp_path: Path, clock: FakeClock) -> None:
    engines = two_shards(tmp_path, clock)
    qa, qb = queue_on(0), queue_on(1)
    child = push(engines[1], qb, max_attempts=1)
    parent = push(engines[0], qa, depends_on=[child])
    deliver(engines)
    pull(engines[1], qb)
    call(engines[1], p.FailJob(child, "broken"))
    deliver(engines)
    assert state(engines[0], parent) == "failed"
    assert dlq_reasons(engines[0], qa) == ["dependency_failed"]


def test_dependency_resolution_survives_a_lost_message_and_restarts(tmp_path: Path, clock: FakeClock) -> None:
    engines = two_shards(tmp_path, clock)
    qa, qb = queue_on(0), queue_on(1)
    child = push(engines[1], qb)
    parent = push(engines[0], qa, depends_on=[child])
    deliver(engines)
    pull(engines[1], qb)
    ack(engines[1], child, b"1")
    engines[1].outgoing.clear()  # the parent's shard is down: the notification is lost
    for engine in engines:
        engine.flush()
        engine.store.close()
    engines = two_shards(tmp_path, clock)  # both restart; the child's outbox re-sends
    deliver(engines)
    assert state(engines[0], parent) == "waiting"


def test_repeat_every_until_limit(engine: Engine, clock: FakeClock) -> None:
    push(engine, repeat=b'{"every": 1000, "limit": 3}')
    runs = 0
    for _ in range(6):
        jobs = pull(engine)
        if jobs:
            runs += 1
            ack(engine, jobs[0]["id"])  # type: ignore[arg-type]
        clock.advance(1000)
        engine.tick()
    assert runs == 3
    assert counts(engine)["completed"] == 3 and counts(engine)["delayed"] == 0


def test_repeat_cron_runs_at_the_next_matching_time(engine: Engine, clock: FakeClock) -> None:
    clock.now = 1_700_000_010_000  # 22:13:30 UTC
    job_id = push(engine, repeat=b'{"cron": "*/5 * * * *"}')
    assert state(engine, job_id) == "delayed"
    assert engine.jobs[job_id].run_at == 1_700_000_100_000  # 22:15:00
    clock.now = 1_700_000_100_000
    engine.tick()
    ack(engine, pull(engine)[0]["id"])  # type: ignore[arg-type]
    nxt = [j for j in engine.jobs.values() if j.state == "delayed"]
    assert [j.run_at for j in nxt] == [1_700_000_400_000]


def test_progress_data_priority_and_delay_operations(engine: Engine, clock: FakeClock) -> None:
    low = push(engine, priority=1)
    high = push(engine, priority=5)
    assert call(engine, p.ChangePriority(low, 10)) == p.Done()
    assert call(engine, p.UpdateData(low, b'{"new":1}')) == p.Done()
    job = pull(engine)[0]
    assert (job["id"], job["data"]) == (low, {"new": 1})
    assert isinstance(call(engine, p.ChangePriority(low, 1)), p.Error)
    assert call(engine, p.UpdateProgress(low, 40, "parsing")) == p.Done()
    assert call(engine, p.GetProgress(low)) == p.Progress(40, "parsing")
    assert call(engine, p.MoveToDelayed(low, 5000)) == p.Done()
    assert state(engine, low) == "delayed"
    assert call(engine, p.ChangeDelay(low, 60_000)) == p.Done()
    clock.advance(5000)
    engine.tick()
    assert [j["id"] for j in pull(engine)] == [high]
    assert call(engine, p.PromoteJob(low)) == p.Done()
    assert [j["id"] for j in pull(engine)] == [low]
    refused = call(engine, p.PromoteJob(low))
    assert refused == p.Error("bad_request", "Job not found or not delayed")


def test_change_delay_delays_a_waiting_job_as_the_reference_does(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine)
    assert call(engine, p.ChangeDelay(job_id, 0)) == p.Done() and state(engine, job_id) == "waiting"
    assert call(engine, p.ChangeDelay(job_id, 5000)) == p.Done() and state(engine, job_id) == "delayed"
    assert pull(engine) == []
    clock.advance(5000)
    engine.tick()
    assert [j["id"] for j in pull(engine)] == [job_id]
    refused = call(engine, p.ChangeDelay(job_id, 5000))  # active: move-to-delayed is its operation
    assert refused == p.Error("bad_request", "Job not found or not delayed")


def test_discard_from_every_live_state(engine: Engine) -> None:
    waiting = push(engine)
    delayed = push(engine, delay=10_000)
    active = push(engine, priority=5)
    pull(engine)
    for job_id in (waiting, delayed, active):
        assert call(engine, p.DiscardJob(job_id)) == p.Done()
        assert state(engine, job_id) == "failed"
    assert dlq_reasons(engine) == ["discarded"] * 3
    assert counts(engine) | {"waiting": 0, "delayed": 0, "active": 0, "failed": 3} == counts(engine)


def test_wait_is_answered_when_the_job_completes(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine)
    replies: list[p.Reply] = []
    engine.handle(p.WaitJob(job_id, 30_000), replies.append)
    assert replies == []
    pull(engine)
    ack(engine, job_id, b'{"sent":true}')
    assert replies == [p.WaitOutcome(True, b'{"sent":true}', "completed")]
    assert call(engine, p.WaitJob(job_id, 30_000)) == p.WaitOutcome(True, b'{"sent":true}', "completed")


def test_wait_times_out(engine: Engine, clock: FakeClock) -> None:
    job_id = push(engine)
    replies: list[p.Reply] = []
    engine.handle(p.WaitJob(job_id, 1000), replies.append)
    clock.advance(1000)
    engine.tick()
    assert replies == [p.WaitOutcome(False)]


def test_logs_are_bounded_per_job(engine: Engine) -> None:
    job_id = push(engine)
    for i in range(105):
        call(engine, p.AddLog(job_id, f"line {i}", "warn"))
    logs = call(engine, p.GetLogs(job_id))
    assert isinstance(logs, p.Logs) and len(logs.logs) == 100
    assert msgspec.json.decode(logs.logs[0])["message"] == "line 5"
    call(engine, p.ClearLogs(job_id))
    assert call(engine, p.GetLogs(job_id)) == p.Logs([])
    assert isinstance(call(engine, p.GetLogs(new_job_id(0))), p.Error)


def test_logs_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    job_id = push(engine)
    call(engine, p.AddLog(job_id, "hello", "info"))
    engine.flush()
    engine.store.close()
    again = make_engine(tmp_path / "s.db", clock)
    logs = call(again, p.GetLogs(job_id))
    assert isinstance(logs, p.Logs) and msgspec.json.decode(logs.logs[0])["message"] == "hello"


def test_unique_key_frees_when_the_job_completes(engine: Engine) -> None:
    first = push(engine, unique_key="k")
    assert push(engine, unique_key="k") == first
    pull(engine)
    ack(engine, first)
    assert push(engine, unique_key="k") != first


def test_repeat_is_scheduled_once_across_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    first = push(engine, repeat=b'{"every": 60000}')
    pull(engine)
    ack(engine, first)
    engine.flush()
    engine.store.close()
    again = make_engine(tmp_path / "s.db", clock)
    scheduled = [j for j in again.jobs.values() if j.state == "delayed"]
    assert len(scheduled) == 1 and scheduled[0].repeat_count == 1
    clock.advance(60_000)
    again.tick()
    assert len(pull(again, count=5)) == 1


def test_every_field_of_a_push_lands_in_its_job(engine: Engine, clock: FakeClock) -> None:
    """A push's fields are copied into the job positionally (for speed): each must land in its own place."""
    slot = slot_of("fields", engine.slots)
    spec = p.NewJob(
        data=b'{"d":1}', priority=7, delay=5000, max_attempts=9, backoff=1234, ttl=99_000, timeout=4321,
        unique_key="uk", job_id=None, tags=("t1", "t2"), group_id="g", lifo=True, remove_on_complete=True,
        remove_on_fail=True, durable=True, depends_on=(), repeat=None, name="named", id=new_job_id(slot),
    )  # fmt: skip
    reply = call(engine, p.AddJobs("fields", [spec]))
    assert isinstance(reply, p.Ids) and reply.ids == [spec.id]
    job = engine.index.find(spec.id or "")
    assert job is not None
    now = clock()
    expected = {
        "id": spec.id, "queue": "fields", "slot": slot, "data": b'{"d":1}', "priority": 7, "created_at": now,
        "run_at": now + 5000, "attempts": 0, "max_attempts": 9, "backoff": 1234, "ttl": 99_000, "timeout": 4321,
        "unique_key": "uk", "custom_id": None, "tags": ("t1", "t2"), "group_id": "g", "lifo": True,
        "remove_on_complete": True, "remove_on_fail": True, "durable": True, "depends_on": (), "repeat": None,
        "name": "named", "state": p.State.DELAYED, "pending_deps": (), "children": None,
    }  # fmt: skip
    assert {name: getattr(job, name) for name in expected} == expected
    custom = call(engine, p.AddJobs("fields", [p.NewJob(data=b"1", job_id="mine", depends_on=("mine", "other"))]))
    assert isinstance(custom, p.Ids) and custom.ids == ["mine"]
    mine = engine.index.find("mine")
    assert mine is not None and mine.custom_id == "mine" and mine.pending_deps == ("other",)
