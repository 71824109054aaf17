"""The push options inside one shard (`AddJobs(options=True)`): a unique key's window (`dedup.ttl`), what a
duplicate does (`extend`, `replace`), debounce keys, a pushed child's parent and policy, all-or-nothing
refusals, and the windows across a restart."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bunq import protocol as p
from bunq.protocol import FlowPolicy, State
from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import call, counts, make_engine, pull, push


def job(data: bytes = b"{}", **options: object) -> p.NewJob:
    """A job with options; `unique_key`, `job_id` and `depends_on` are the job's own fields."""
    own = {k: options.pop(k) for k in ("unique_key", "job_id", "depends_on") if k in options}
    return p.NewJob(data, **own, options=p.PushOptions(**options))  # type: ignore[arg-type]


def add(engine: Engine, *jobs: p.NewJob, queue: str = "q") -> p.Reply:
    return call(engine, p.AddJobs(queue, list(jobs), options=True))


def ids(reply: p.Reply) -> list[str]:
    assert isinstance(reply, p.Ids), reply
    return reply.ids


def holder(engine: Engine, key: str) -> str | None:
    reply = call(engine, p.GetDeduplicationJobId("q", key))
    assert isinstance(reply, p.Ids)
    return reply.ids[0] if reply.ids else None


def test_a_dedup_ttl_window_ends_while_the_job_waits(engine: Engine, clock: FakeClock) -> None:
    [first] = ids(add(engine, job(unique_key="k", dedup_ttl=1000)))
    assert push(engine, unique_key="k") == first  # a plain duplicate within the window
    clock.advance(1000)
    engine.tick()
    assert holder(engine, "k") is None
    assert engine.jobs[first].unique_key is None  # let go of for good, so a restart does not give it back
    second = push(engine, unique_key="k")
    assert second != first and holder(engine, "k") == second
    assert counts(engine)["waiting"] == 2


def test_extend_moves_the_window_of_a_waiting_holder(engine: Engine, clock: FakeClock) -> None:
    [first] = ids(add(engine, job(unique_key="k", dedup_ttl=1000)))
    clock.advance(900)
    assert ids(add(engine, job(unique_key="k", dedup_ttl=1000, dedup_extend=True))) == [first]
    clock.advance(500)  # past the first window, inside the extended one
    engine.tick()
    assert holder(engine, "k") == first
    clock.advance(500)
    engine.tick()
    assert holder(engine, "k") is None


def test_extend_of_a_started_holder_is_refused_and_changes_nothing(engine: Engine, clock: FakeClock) -> None:
    [first] = ids(add(engine, job(unique_key="k", dedup_ttl=1000)))
    pull(engine)
    reply = add(engine, job(unique_key="k", dedup_ttl=5000, dedup_extend=True))
    assert reply == p.Error("bad_request", "Duplicate unique_key (extended TTL)")
    clock.advance(1000)
    engine.tick()
    assert holder(engine, "k") is None  # the window was not moved


def test_replace_removes_a_waiting_holder_and_takes_its_key(engine: Engine) -> None:
    first = push(engine, data=b'{"n":1}', unique_key="k")
    [second] = ids(add(engine, job(b'{"n":2}', unique_key="k", dedup_replace=True)))
    assert second != first and holder(engine, "k") == second
    assert engine.index.find(first) is None
    assert [j["data"] for j in pull(engine, count=5)] == [{"n": 2}]


def test_replace_lets_a_running_holder_run_on_without_its_key(engine: Engine) -> None:
    first = push(engine, unique_key="k")
    pull(engine)
    [second] = ids(add(engine, job(unique_key="k", dedup_replace=True)))
    assert holder(engine, "k") == second
    assert engine.jobs[first].state == State.ACTIVE and engine.jobs[first].unique_key is None


def test_replace_of_a_job_others_wait_for_is_refused_and_the_bulk_makes_nothing(engine: Engine) -> None:
    first = push(engine, unique_key="k", job_id="A")
    push(engine, depends_on=("A",))
    before = counts(engine)
    reply = add(engine, job(b'{"other":1}'), job(unique_key="k", dedup_replace=True))
    assert reply == p.Error("bad_request", f"Cannot replace deduplicated job {first} because live jobs depend on it")
    assert counts(engine) == before


def test_keys_taken_earlier_in_the_same_bulk_count(engine: Engine) -> None:
    made = ids(add(engine, job(unique_key="k"), job(unique_key="k", dedup_ttl=10, dedup_extend=True)))
    assert made[0] == made[1]
    waits = job(unique_key="j", depends_on=("nope",))  # waits for children: an extend of it is refused
    refused = add(engine, waits, job(unique_key="j", dedup_ttl=9, dedup_extend=True))
    assert refused == p.Error("bad_request", "Duplicate unique_key (extended TTL)")
    assert holder(engine, "j") is None


def test_a_debounce_key_keeps_the_last_push_of_its_window(engine: Engine, clock: FakeClock) -> None:
    first, second = (ids(add(engine, job(d, debounce_id="d", debounce_ttl=1000)))[0] for d in (b"1", b"2"))
    assert first != second and engine.index.find(first) is None
    clock.advance(1000)
    engine.tick()
    [third] = ids(add(engine, job(b"3", debounce_id="d", debounce_ttl=1000)))  # a new window: both stay
    assert [j["data"] for j in pull(engine, count=5)] == [2, 3]
    [fourth] = ids(add(engine, job(b"4", debounce_id="d", debounce_ttl=1000)))
    assert fourth != third and engine.jobs[third].state == State.ACTIVE  # a started job is not replaced


def test_a_pushed_child_tells_its_parent_under_its_policy(engine: Engine) -> None:
    parent = push(engine, "pq", job_id="P")
    assert call(engine, p.LinkChild(parent, "C")) == p.Done()
    child = job(job_id="C", parent_id=parent, parent_slot=engine.slot("pq"), policy=FlowPolicy.CONTINUE)
    assert ids(add(engine, msgspec.structs.replace(child, max_attempts=1))) == ["C"]
    assert engine.jobs["C"].parent_id == parent and engine.jobs["C"].flow_policy == FlowPolicy.CONTINUE
    assert engine.jobs[parent].state == State.WAITING_CHILDREN
    pull(engine)
    assert call(engine, p.FailJob("C", "boom")) == p.Done()
    assert engine.jobs[parent].state == State.WAITING  # continue: it runs without the child
    assert call(engine, p.GetFlowFailures(parent)) == p.Failures({"q:C": "boom"})


def test_windows_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    engine = make_engine(tmp_path / "s.db", clock)
    [short] = ids(add(engine, job(unique_key="short", dedup_ttl=1000)))
    [long] = ids(add(engine, job(unique_key="long", dedup_ttl=60_000)))
    [debounced] = ids(add(engine, job(debounce_id="d", debounce_ttl=60_000)))
    engine.flush()
    clock.advance(2000)  # the short window ends while the shard is down
    again = make_engine(tmp_path / "s.db", clock)
    assert holder(again, "short") is None and again.jobs[short].unique_key is None
    assert holder(again, "long") == long
    [replacing] = ids(add(again, job(debounce_id="d", debounce_ttl=60_000)))
    assert again.index.find(debounced) is None and replacing != debounced
    clock.advance(60_000)
    again.tick()
    assert holder(again, "long") is None
