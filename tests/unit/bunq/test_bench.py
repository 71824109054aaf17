"""scripts/bench and scripts/bench_sweep: the multi-queue scenario, latencies, CPU metering and the tables."""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def load(name: str) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(f"script_{name}", str(SCRIPTS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


bench = load("bench")
sweep = load("bench_sweep")


class FakeQueues(BaseHTTPRequestHandler):
    """Answers bulk pushes and obliterates like bunqueue does, and records the paths it was sent."""

    protocol_version = "HTTP/1.1"
    paths: list[str] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.paths.append(self.path)
        reply: dict[str, Any] = {"ok": True}
        if self.path.endswith("/jobs/bulk"):
            reply["ids"] = [str(i) for i in range(len(body["jobs"]))]
        raw = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[ThreadingHTTPServer]:
    FakeQueues.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeQueues)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_bulk8q_spreads_its_requests_over_eight_queues_and_obliterates_them(fake_server: ThreadingHTTPServer) -> None:
    url = f"fake=http://127.0.0.1:{fake_server.server_address[1]}"
    args = bench.parse_args(["--url", url, "--only", "bulk8q", "--scale", "0.08", "--rounds", "1"])
    report = bench.run_one(bench.SCENARIOS["bulk8q"], args.targets[0], 1, args)

    bulks = [p.split("/")[2] for p in FakeQueues.paths if p.endswith("/jobs/bulk")]
    wiped = [p.split("/")[2] for p in FakeQueues.paths if p.endswith("/obliterate")]
    assert len(bulks) == 16 and len(set(bulks)) == 8
    assert all(bulks.count(q) == 2 for q in set(bulks))
    assert sorted(wiped) == sorted(set(bulks))
    assert {q.rsplit("-", 1)[1] for q in wiped} == {str(i) for i in range(8)}
    assert not report.flagged and report.done == 16_000
    assert list(report.metrics) == ["jobs/s", "p50 ms", "p99 ms"]
    assert report.queue.endswith("-0..7")


def test_push_type_scenarios_report_request_latency_percentiles() -> None:
    res = bench.PartResult(done=100, latencies_ms=[float(i) for i in range(1, 101)])
    metrics = bench.run_metrics(bench.SCENARIOS["push"], res, 1.0)
    assert metrics == {"jobs/s": 100.0, "p50 ms": 50.0, "p99 ms": 99.0}
    assert list(bench.run_metrics(bench.SCENARIOS["drain"], res, 1.0)) == ["jobs/s"]


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], start_new_session=True)
    yield proc
    os.killpg(proc.pid, signal.SIGKILL)  # its own group: the sh and its sleep
    proc.wait()


def test_cpu_meter_sums_a_process_tree_by_part(tree: subprocess.Popen[bytes]) -> None:
    meter = bench.CpuMeter((tree.pid,))
    deadline = time.monotonic() + 10
    while "sleep" not in meter.sample().parts and time.monotonic() < deadline:
        time.sleep(0.01)
    before = meter.sample()
    use = meter.since(before)
    assert set(before.parts) == {"sh", "sleep"}
    assert use.wall_s >= 0 and use.server_s >= 0 and use.client_s >= 0
    metrics = bench.cpu_metrics(use, 10, with_parts=True)
    assert list(metrics) == ["cpu %", "cpu µs/job", "client cpu %", "cpu % sh", "cpu % sleep"]


def test_cpu_meter_never_counts_the_benchmark_itself() -> None:
    assert bench.CpuMeter((os.getpid(),)).sample().parts == {}


def test_cpu_option_names_a_target_by_label() -> None:
    one = [bench.parse_target("http://127.0.0.1:1")]
    two = [bench.parse_target("a=http://127.0.0.1:1"), bench.parse_target("b=http://127.0.0.1:2")]
    me = os.getpid()
    assert bench.parse_cpu([str(me)], one) == {"127.0.0.1:1": (me,)}
    assert bench.parse_cpu([f"b={me},{me}"], two) == {"b": (me, me)}
    for spec in (str(me), f"c={me}", "a=x", "a=0"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_cpu([spec], two)


def test_table_shows_every_metric_of_any_target() -> None:
    targets = [bench.parse_target("a=http://h:1"), bench.parse_target("b=http://h:2")]

    def report(target: str, metrics: dict[str, float]) -> Any:
        return bench.RunReport("push", target, 1, "q", metrics, 1, 1, 1, 0, {}, False, 1.0)

    reports = [report("a", {"jobs/s": 200.0, "p99 ms": 2.0, "cpu %": 150.0}), report("b", {"jobs/s": 100.0})]
    table = bench.render_table(targets, ["push"], reports)
    assert "| push | p99 ms | 2.00 | n/a | n/a |" in table
    assert "| push | cpu % | 150 | n/a | n/a |" in table
    assert "| push | jobs/s | 200 | 100 | 2.00 |" in table


def test_sweep_table_shows_the_factor_over_the_first_combination() -> None:
    def doc(rate: float, errors: int) -> dict[str, Any]:
        return {
            "medians": {"bulk8q": {"bunq": {"jobs/s": rate, "cpu %": 99.6}}},
            "runs": [{"scenario": "bulk8q", "errors": errors, "timed_out": False}],
        }

    rows = [
        sweep.Row(sweep.Combo(1, 1), sweep.read_cells(doc(1000.0, 0), ["bulk8q"], ["jobs/s", "cpu %"])),
        sweep.Row(sweep.Combo(2, 1), sweep.read_cells(doc(2500.0, 3), ["bulk8q"], ["jobs/s", "cpu %"])),
        sweep.Row(sweep.Combo(4, 1), flagged=True),
    ]
    lines = sweep.render(rows, ["bulk8q"], ["jobs/s", "cpu %"]).splitlines()
    assert lines[0] == "| shards | fronts | bulk8q jobs/s | bulk8q cpu % |"
    assert lines[2] == "| 1 | 1 | 1,000 (1.00×) | 100 |"
    assert lines[3] == "| 2 | 1 | 2,500 (2.50×) ! | 100 ! |"
    assert lines[4] == "| 4 | 1 | n/a ! | n/a ! |"


def test_sweep_passes_what_follows_a_double_dash_to_bench() -> None:
    args = sweep.parse_args(["--shards", "1,2", "--fronts", "1", "--", "--procs", "2"])
    assert (args.shards, args.fronts, args.scenarios, args.rounds) == ([1, 2], [1], ["bulk8q", "push"], 2)
    command = sweep.bench_command(args, 1234, 99, Path("/tmp/out.json"))
    assert command[-2:] == ["--procs", "2"]
    assert "bunq=http://127.0.0.1:1234" in command and "bunq=99" in command


def test_sweep_serves_on_loopback_with_its_own_directories(tmp_path: Path) -> None:
    env = sweep.server_env(sweep.Combo(4, 2), 4321, tmp_path)
    assert env["HTTP_HOST"] == "127.0.0.1" and env["HTTP_PORT"] == "4321"
    assert (env["BUNQ_SHARDS"], env["BUNQ_FRONTS"]) == ("4", "2")
    assert env["BUNQ_DATA_DIR"].startswith(str(tmp_path)) and env["BUNQ_RUN_DIR"].startswith(str(tmp_path))
