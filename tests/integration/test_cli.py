"""The operator command line against `bunq serve`: every command run as a user runs it (`python -m bunq.cli`, a
process of its own), checked by what it printed, its exit status and what the server holds afterwards."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bunq.sdk import Client
from tests.support.processes import ROOT, BunqServer, free_port

pytestmark = pytest.mark.integration

SERVER_MODULES = ("zmq", "apsw", "uvicorn", "starlette")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without the user's own BUNQ_URL / BUNQ_TOKEN / COLUMNS, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("BUNQ_URL", "BUNQ_TOKEN", "COLUMNS")}
    return {**env, **extra}


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bunq.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env or cli_env(),
    )


def bunq(server: BunqServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run("--url", server.url, *args, stdin=stdin)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """A failure as the user sees it: the exit status, one line `bunq: ...` on stderr, no traceback."""
    assert result.returncode == code, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    if code == 1:
        assert result.stderr.startswith("bunq: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def declined(result: subprocess.CompletedProcess[str]) -> None:
    """A question answered no: exit 1, the question then the refusal on stderr (stdout left clean)."""
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    question, refusal = result.stderr.split("[y/N]: ")
    assert (
        question.endswith("? ")
        and refusal == "bunq: not confirmed; nothing changed (pass --yes to skip the question)\n"
    )


def cli_json(server: BunqServer, *args: str) -> Any:
    return json.loads(ok(bunq(server, *args, "--json")))


def row(output: str, name: str) -> list[str]:
    """The cells of the table row whose first cell is `name`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")


@pytest.fixture
def client(live_server: BunqServer) -> Iterator[Client]:
    with Client(live_server.url) as c:
        yield c


def fail_into_dlq(client: Client, queue: str, data: Any) -> str:
    job_id = client.push(queue, data, max_attempts=1)
    lease = client.pull(queue, 5000)
    assert lease is not None and lease.job.id == job_id
    client.fail(job_id, "boom")
    return job_id


def complete(client: Client, queue: str, result: Any) -> str:
    lease = client.pull(queue, 5000)
    assert lease is not None
    client.ack(lease.job.id, result)
    return lease.job.id


# -- jobs ------------------------------------------------------------------------------------------------------


def test_push_prints_the_id_and_job_json_shows_data_and_options(live_server: BunqServer, queue: str) -> None:
    args = ["--priority", "5", "--max-attempts", "2", "--tag", "a", "--tag", "b", "--delay", "60000"]
    job_id = ok(bunq(live_server, "push", queue, '{"to": "x@example.com", "n": [1, 2]}', *args)).strip()
    shown = cli_json(live_server, "job", job_id)
    assert shown["id"] == job_id and shown["queue"] == queue
    assert shown["data"] == {"to": "x@example.com", "n": [1, 2]}
    assert (shown["priority"], shown["maxAttempts"], shown["tags"], shown["state"]) == (5, 2, ["a", "b"], "delayed")
    assert shown["logs"] == [] and shown["result"] is None


def test_push_takes_data_that_is_not_json_as_a_string(live_server: BunqServer, queue: str, client: Client) -> None:
    pushed = cli_json(live_server, "push", queue, "hello world", "--job-id", f"{queue}-1")
    assert client.get_job(pushed["id"]).data == "hello world"
    again = cli_json(live_server, "push", queue, "other", "--job-id", f"{queue}-1")
    assert again["id"] == pushed["id"]  # the same custom id is the same job


def test_job_shows_state_data_result_and_logs(live_server: BunqServer, queue: str, client: Client) -> None:
    job_id = client.push(queue, {"n": 7})
    lease = client.pull(queue, 5000)
    assert lease is not None
    client.log(job_id, "halfway there")
    client.ack(job_id, {"sum": 49})
    shown = ok(bunq(live_server, "job", job_id))
    assert job_id in shown and "completed" in shown and '"sum": 49' in shown and "halfway there" in shown
    as_json = cli_json(live_server, "job", job_id)
    assert as_json["state"] == "completed" and as_json["result"] == {"sum": 49}
    assert [entry["message"] for entry in as_json["logs"]] == ["halfway there"]


def test_import_of_2500_lines_pushes_every_job_with_its_options(
    live_server: BunqServer, queue: str, client: Client, tmp_path: Path
) -> None:
    lines = [json.dumps({"data": {"n": i}, "priority": 3}) if i % 2 else json.dumps({"n": i}) for i in range(2500)]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = ok(bunq(live_server, "import", queue, str(path)))
    assert out == f"imported 2500 job(s) into {queue}\n"
    assert client.counts(queue).waiting == 2500
    jobs = client.list_jobs(queue, limit=5000)
    assert sorted(j.data["n"] for j in jobs) == list(range(2500))
    assert all(j.priority == (3 if j.data["n"] % 2 else 0) for j in jobs)


def test_import_from_stdin_stops_at_a_bad_line_with_its_number(
    live_server: BunqServer, queue: str, client: Client
) -> None:
    stdin = '{"data": 1}\n2\n\n3\n{"data": 4, "prority": 9}\n5\n'  # chunks of 2: [1, 2], [3, line 5]
    err = refused(bunq(live_server, "import", queue, "-", "--chunk", "2", stdin=stdin))
    assert "line 5" in err and "prority" in err and "2 job(s) before it" in err
    assert client.counts(queue).waiting == 2  # the first chunk, not the bad line's

    err = refused(bunq(live_server, "import", queue, "-", stdin='"ok"\n{not json\n'))
    assert "line 2: not JSON" in err
    assert client.counts(queue).waiting == 2


def test_import_names_the_line_the_server_refused(live_server: BunqServer, queue: str, client: Client) -> None:
    stdin = '{"data": 1}\n{"data": 2, "priority": "high"}\n'
    err = refused(bunq(live_server, "import", queue, "-", stdin=stdin))
    assert "line 2: priority must be a number (HTTP 400)" in err
    assert client.counts(queue).waiting == 0  # a bulk push is all or nothing


def test_export_round_trips_through_import(live_server: BunqServer, queue: str, client: Client) -> None:
    for i in range(5):
        client.push(queue, {"i": i}, priority=i, tags=[f"t{i}"], max_attempts=i + 1)
    client.push(queue, {"later": True}, delay=60_000)
    exported = ok(bunq(live_server, "export", queue))
    assert len(exported.splitlines()) == 6
    copy = queue + "-copy"
    assert ok(bunq(live_server, "import", copy, "-", stdin=exported)) == f"imported 6 job(s) into {copy}\n"

    def options(q: str) -> list[tuple[Any, ...]]:
        jobs = [json.loads(line) for line in ok(bunq(live_server, "export", q)).splitlines()]
        return sorted((json.dumps(j["data"]), j["priority"], j["tags"], j["maxAttempts"]) for j in jobs)

    assert options(copy) == options(queue)
    delayed = [json.loads(line) for line in ok(bunq(live_server, "export", queue, "--state", "delayed")).splitlines()]
    assert [j["data"] for j in delayed] == [{"later": True}]


def test_wait_prints_the_result_or_exits_1(live_server: BunqServer, queue: str, client: Client) -> None:
    done_id = client.push(queue, 1)
    complete(client, queue, {"answer": 42})
    assert json.loads(ok(bunq(live_server, "wait", done_id))) == {"answer": 42}
    waiting_id = client.push(queue, 2)
    err = refused(bunq(live_server, "wait", waiting_id, "--timeout", "300"))
    assert waiting_id in err and "waiting" in err and "300 ms" in err


def test_cancel_removes_the_job(live_server: BunqServer, queue: str, client: Client) -> None:
    job_id = client.push(queue, 1)
    assert ok(bunq(live_server, "cancel", job_id)) == f"cancelled {job_id}\n"
    assert client.counts(queue).waiting == 0


def test_retry_sends_dlq_entries_back_one_or_all(live_server: BunqServer, queue: str, client: Client) -> None:
    first, second, third = (fail_into_dlq(client, queue, n) for n in range(3))
    assert cli_json(live_server, "retry", queue, first) == {"queue": queue, "count": 1}
    assert client.get_state(first) == "waiting"
    assert ok(bunq(live_server, "retry", queue)) == f"retried 2 job(s) from the DLQ of {queue}\n"
    assert {client.get_state(second), client.get_state(third)} == {"waiting"}
    assert client.counts(queue).failed == 0
    assert "not in the DLQ" in refused(bunq(live_server, "retry", queue, first))


# -- queues ----------------------------------------------------------------------------------------------------


def test_queues_lists_counts_and_paused(live_server: BunqServer, queue: str, client: Client) -> None:
    fail_into_dlq(client, queue, 3)
    client.push(queue, 1)
    client.push(queue, 2, delay=60_000)
    client.pause(queue)
    listed = {q["queue"]: q for q in cli_json(live_server, "queues")}
    assert listed[queue]["paused"] is True
    counts = listed[queue]["counts"]
    assert (counts["waiting"], counts["delayed"], counts["failed"]) == (1, 1, 1)
    cells = row(ok(bunq(live_server, "queues")), queue)
    assert cells[1:] == ["yes", "1", "1", "0", "0", "1"]  # paused, waiting, delayed, active, completed, DLQ


def test_pause_and_resume(live_server: BunqServer, queue: str, client: Client) -> None:
    client.push(queue, 1)
    assert ok(bunq(live_server, "pause", queue)) == f"paused {queue}\n"
    assert client.is_paused(queue)
    assert client.pull(queue, 0) is None
    assert cli_json(live_server, "resume", queue) == {"queue": queue, "paused": False}
    assert not client.is_paused(queue)


def test_drain_and_clean_report_what_they_removed(live_server: BunqServer, queue: str, client: Client) -> None:
    for n in range(3):
        client.push(queue, n)
    client.push(queue, "later", delay=60_000)
    assert ok(bunq(live_server, "drain", queue)) == f"drained 4 job(s) from {queue}\n"
    assert client.counts(queue).waiting == client.counts(queue).delayed == 0
    client.push(queue, "x")
    complete(client, queue, None)
    assert cli_json(live_server, "clean", queue, "--state", "completed", "--grace", "0") == {"queue": queue, "count": 1}
    assert client.counts(queue).completed == 0


def test_obliterate_asks_first(live_server: BunqServer, queue: str, client: Client) -> None:
    client.push(queue, 1)
    declined(bunq(live_server, "obliterate", queue, stdin="n\n"))
    assert client.counts(queue).waiting == 1
    ok(bunq(live_server, "obliterate", queue, stdin="y\n"))
    assert queue not in client.queues()
    client.push(queue, 2)
    assert ok(bunq(live_server, "obliterate", queue, "--yes")) == f"obliterated {queue}\n"
    assert queue not in client.queues()


def test_dlq_lists_retries_and_purges(live_server: BunqServer, queue: str, client: Client) -> None:
    ids = {fail_into_dlq(client, queue, {"n": n}) for n in range(2)}
    listed = cli_json(live_server, "dlq", queue)
    assert {e["id"] for e in listed} == ids and {e["error"] for e in listed} == {"boom"}
    table = ok(bunq(live_server, "dlq", queue, "list"))
    assert all(job_id in table for job_id in ids) and "boom" in table
    assert cli_json(live_server, "dlq", queue, "retry") == {"queue": queue, "count": 2}
    assert client.counts(queue).waiting == 2 and client.counts(queue).failed == 0
    client.drain(queue)

    fail_into_dlq(client, queue, "again")
    declined(bunq(live_server, "dlq", queue, "purge", stdin="n\n"))
    assert client.counts(queue).failed == 1
    assert ok(bunq(live_server, "dlq", queue, "purge", "--yes")) == f"purged 1 job(s) from the DLQ of {queue}\n"
    assert client.counts(queue).failed == 0


def test_crons_add_list_and_remove(live_server: BunqServer, queue: str, client: Client) -> None:
    name = queue + "-cron"
    added = cli_json(live_server, "crons", "add", name, queue, '{"tick": 1}', "--every", "3600000", "--priority", "2")
    assert added["name"] == name and added["repeatEvery"] == 3_600_000 and added["nextRun"] > 0
    assert name in {c["name"] for c in cli_json(live_server, "crons")}
    assert row(ok(bunq(live_server, "crons", "list")), name)[1:3] == [queue, "every 3600000 ms"]
    assert client.get_cron(name).data == {"tick": 1}
    assert ok(bunq(live_server, "crons", "rm", name)) == f"removed cron {name}\n"
    assert name not in {c.name for c in client.crons()}
    refused(bunq(live_server, "crons", "add", name, queue), code=2)  # neither --schedule nor --every
    assert "HTTP 404" in refused(bunq(live_server, "crons", "rm", name))


def test_webhooks_add_list_and_remove(live_server: BunqServer, queue: str, client: Client) -> None:
    url = f"http://127.0.0.1:9/{queue}"
    hook_id = ok(bunq(live_server, "webhooks", "add", url, "--event", "completed", "--queue", queue)).strip()
    listed = {h["id"]: h for h in cli_json(live_server, "webhooks", "list")}
    assert listed[hook_id]["url"] == url and listed[hook_id]["events"] == ["completed"]
    assert row(ok(bunq(live_server, "webhooks")), hook_id)[1] == url
    ok(bunq(live_server, "webhooks", "rm", hook_id))
    assert hook_id not in {h.id for h in client.webhooks()}


def test_workers_lists_the_registry(live_server: BunqServer, queue: str, client: Client) -> None:
    worker = client.register_worker(queue + "-w", [queue], concurrency=4, hostname="box", pid=123)
    try:
        found = {w["id"]: w for w in cli_json(live_server, "workers")}
        assert found[worker.id]["name"] == queue + "-w" and found[worker.id]["concurrency"] == 4
        cells = row(ok(bunq(live_server, "workers")), worker.id)
        assert cells[1:5] == [queue + "-w", queue, "box", "123"]
    finally:
        client.unregister_worker(worker.id)


def test_stats_shows_the_servers_totals(live_server: BunqServer, queue: str, client: Client) -> None:
    client.push(queue, 1)
    figures = cli_json(live_server, "stats")
    assert figures["stats"]["totalPushed"] >= 1 and figures["stats"]["shards"] == 2
    out = ok(bunq(live_server, "stats"))
    assert int(row(out, "totalPushed")[1]) >= 1 and "memory" in out


# -- live views ------------------------------------------------------------------------------------------------


def test_top_once_shows_each_queue_its_rates_and_the_workers(
    live_server: BunqServer, queue: str, client: Client
) -> None:
    busy, paused = queue + "-busy", queue + "-paused"
    for n in range(3):
        client.push(paused, n)
    client.pause(paused)
    for n in range(200):
        client.push(busy, n)
    worker = client.register_worker(queue + "-w", [busy])
    stop = threading.Event()

    def work() -> None:  # completes jobs through the whole measuring interval, the worker kept registered
        with Client(live_server.url) as c:
            while not stop.wait(0.05):
                complete(c, busy, None)
                c.worker_heartbeat(worker.id)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        out = ok(bunq(live_server, "top", "--once", "--interval", "2"))
    finally:
        stop.set()
        thread.join()
        client.unregister_worker(worker.id)
    assert row(out, paused)[1:5] == ["yes", "3", "0", "0"]  # paused, waiting, active, delayed
    busy_row = row(out, busy)
    assert busy_row[1] == "no" and 0 < int(busy_row[2]) < 200
    assert float(busy_row[5]) > 0 and float(busy_row[6]) == 0 and busy_row[7] == "0"  # completed/s, failed/s, DLQ
    assert row(out, queue + "-w")[1] == busy
    assert "completed/s" in out.splitlines()[1] and "shards up 2" in out


def test_top_runs_full_screen_and_quits_on_q(live_server: BunqServer, queue: str, client: Client) -> None:
    client.push(queue, 1)
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 500, 250, 0, 0))  # room for every queue
    before = termios.tcgetattr(terminal)
    args = [sys.executable, "-m", "bunq.cli", "--url", live_server.url, "top", "--interval", "0.2"]
    proc = subprocess.Popen(args, stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT, env=cli_env())
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while queue.encode() not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 1 << 20)
        assert queue.encode() in seen and b"\x1b[?1049h" in seen  # the frame, on the alternate screen
        assert not termios.tcgetattr(terminal)[3] & termios.ICANON  # cbreak while it runs
        os.write(master, b"q")
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:  # a terminal reads all it is sent
            if select.select([master], [], [], 0.1)[0]:
                os.read(master, 1 << 20)
        assert proc.poll() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert termios.tcgetattr(terminal) == before  # the terminal as it was
    os.close(master)
    os.close(terminal)


def _events_until_exit(proc: subprocess.Popen[str], client: Client, queue: str) -> list[str]:
    """Push a job every 0.1 s until `proc` exits (the stream is live only once the CLI subscribed)."""
    pushed = []
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        pushed.append(client.push(queue, {"n": len(pushed)}))
        time.sleep(0.1)
    proc.wait(5)
    return pushed


def test_events_prints_a_pushed_jobs_event_and_stops_after_count(
    live_server: BunqServer, queue: str, client: Client
) -> None:
    args = [sys.executable, "-m", "bunq.cli", "--url", live_server.url, "events", queue, "--names", "job:pushed"]
    with subprocess.Popen([*args, "--count", "1"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=cli_env()) as proc:
        pushed = _events_until_exit(proc, client, queue)
        assert proc.stdout is not None
        lines = proc.stdout.read().splitlines()
    assert proc.returncode == 0 and len(lines) == 1
    stamp, name, where, job_id, *rest = lines[0].split(" ")
    assert (name, where) == ("job:pushed", queue) and job_id in pushed and stamp[:2] == "20"

    json_args = [*args, "--count", "2", "--json"]
    with subprocess.Popen(json_args, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=cli_env()) as proc:
        pushed = _events_until_exit(proc, client, queue)
        assert proc.stdout is not None
        events = [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert proc.returncode == 0 and [e["event"] for e in events] == ["job:pushed", "job:pushed"]
    assert all(e["data"]["queue"] == queue and e["data"]["jobId"] in pushed for e in events)


def test_events_ends_quietly_on_ctrl_c(live_server: BunqServer, queue: str, client: Client) -> None:
    args = [sys.executable, "-m", "bunq.cli", "--url", live_server.url, "events", queue, "--names", "job:*"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": ROOT, "env": cli_env()}
    with subprocess.Popen(args, **pipes) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = threading.Thread(target=proc.stdout.readline)  # returns once an event was printed
        first.start()
        deadline = time.monotonic() + 30
        while first.is_alive() and time.monotonic() < deadline:
            client.push(queue, 1)
            first.join(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stderr.read() == ""


# -- errors, options and the server commands -------------------------------------------------------------------


def test_a_404_is_one_line_and_exit_1(live_server: BunqServer) -> None:
    assert refused(bunq(live_server, "job", "no-such-job")) == "bunq: Job not found (HTTP 404)\n"
    assert refused(bunq(live_server, "cancel", "no-such-job")).endswith("(HTTP 404)\n")


@pytest.mark.parametrize("command", [["queues"], ["push", "q", "1"], ["events", "--count", "1"], ["top", "--once"]])
def test_an_unreachable_server_is_one_line_and_exit_1(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = refused(run("--url", url, *command))
    assert err.startswith(f"bunq: cannot reach {url} (")


def test_usage_errors_exit_2(live_server: BunqServer, queue: str) -> None:
    refused(bunq(live_server, "push", queue), code=2)  # no DATA
    refused(bunq(live_server, "export", queue, "--state", "sleeping"), code=2)
    refused(bunq(live_server, "no-such-command"), code=2)


def test_url_and_json_may_follow_the_command_and_come_from_the_environment(
    live_server: BunqServer, queue: str, client: Client
) -> None:
    client.push(queue, 1)
    after = json.loads(ok(run("queues", "--url", live_server.url, "--json")))
    from_env = json.loads(ok(run("queues", "--json", env=cli_env(BUNQ_URL=live_server.url))))
    assert queue in {q["queue"] for q in after} and queue in {q["queue"] for q in from_env}
    wrong = f"http://127.0.0.1:{free_port()}"
    assert refused(run("--url", live_server.url, "queues", "--url", wrong)).startswith(f"bunq: cannot reach {wrong}")


def test_the_operator_cli_loads_none_of_the_server() -> None:
    check = "import json, sys, bunq.cli.app; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        json.loads(ok(subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT)))
    )
    assert "click" in loaded and "bunq" in loaded
    assert loaded.isdisjoint(SERVER_MODULES)


def test_a_push_imports_none_of_the_server(live_server: BunqServer, queue: str) -> None:
    args = [sys.executable, "-X", "importtime", "-m", "bunq.cli", "--url", live_server.url, "push", queue, "1"]
    traced = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=60)
    ok(traced)
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in traced.stderr.splitlines() if "|" in line}
    assert "httpx" in imported and imported.isdisjoint(SERVER_MODULES)


def test_server_commands_are_listed_and_keep_their_one_line_config_error() -> None:
    listed = ok(run("--help"))
    assert all(name in listed for name in ("serve", "front", "shard", "aggregator", "prepare", "push", "top"))
    bad = run("serve", env=cli_env(QUEUE_SIZE_THRESHOLD="many"))
    assert bad.returncode == 2 and bad.stderr == "bunq: QUEUE_SIZE_THRESHOLD must be an integer, got 'many'\n"


def test_top_json_is_one_frame_of_values(live_server: BunqServer, queue: str, client: Client) -> None:
    client.push(queue, 1)
    frame = cli_json(live_server, "top", "--once", "--interval", "0.3")
    mine = {q["queue"]: q for q in frame["queues"]}[queue]
    assert mine["counts"]["waiting"] == 1 and mine["paused"] is False and mine["completedPerSecond"] == 0
    assert frame["totals"]["shards"] == 2 and frame["totals"]["completedPerSecond"] >= 0 and frame["error"] is None


@pytest.mark.bunq(AUTH_TOKENS="s3cret")
def test_the_token_comes_from_the_option_or_bunq_token(server: BunqServer, queue: str) -> None:
    assert refused(run("--url", server.url, "push", queue, "1")).endswith("(HTTP 401)\n")
    job_id = ok(run("--url", server.url, "--token", "s3cret", "push", queue, "1")).strip()
    shown = json.loads(ok(run("job", job_id, "--json", env=cli_env(BUNQ_URL=server.url, BUNQ_TOKEN="s3cret"))))
    assert shown["queue"] == queue
