"""A process's own resident memory, as the stats, `/health` and the memory thresholds report it, and what
the server's processes load to know it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bunq import procinfo

ROOT = Path(__file__).resolve().parents[3]


def test_rss_agrees_with_psutil() -> None:
    ours, theirs = procinfo.rss_bytes(), psutil.Process().memory_info().rss
    assert abs(ours - theirs) <= 4 * 1024 * 1024  # the two reads are apart by a few allocations


def test_rss_grows_with_what_the_process_holds() -> None:
    before = procinfo.rss_bytes()
    block = bytearray(64 * 1024 * 1024)  # zero-filled, so every page is touched
    assert procinfo.rss_bytes() - before >= 48 * 1024 * 1024
    del block


def test_without_proc_it_asks_psutil(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(procinfo, "STATM", str(tmp_path / "no-such-file"))
    assert abs(procinfo.rss_bytes() - psutil.Process().memory_info().rss) <= 4 * 1024 * 1024


LATE = {  # what each server process loads only when first used: the idle process set is measured
    "bunq.app": ("psutil", "prometheus_client"),  # prometheus-client at the first scrape
    "shards.server": ("psutil",),
    "bunq.aggregator.server": ("psutil", "httpx"),  # httpx at the first webhook delivery
    "bunq.serve": ("psutil", "tempfile"),  # the supervisor
}


@pytest.mark.parametrize("module", sorted(LATE))
def test_server_processes_start_without_what_they_load_late(module: str) -> None:
    """psutil costs each process that imports it about 1 MB resident, prometheus-client about 1.2 MB, httpx
    several; tempfile (with shutil, bz2, lzma) about 1 MB of the supervisor, which needs nothing else of it."""
    probe = f"import sys, {module}\nprint(sorted(m for m in {LATE[module]!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_prometheus_content_type_is_prometheus_client_s() -> None:
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    from bunq.routes.monitoring import PROMETHEUS_TEXT

    assert PROMETHEUS_TEXT == CONTENT_TYPE_PLAIN_0_0_4
