"""The supervisor's restart policy: a crashed process comes back; one that cannot start ends the server."""

from __future__ import annotations

import subprocess
import time

import pytest

from bunq import serve
from bunq.serve import START_ATTEMPTS, Supervisor
from bunq.settings import Settings


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    """A supervisor whose processes are recorded, not run, and which never sleeps between restarts."""
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kwargs: argv)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    return Supervisor(Settings.from_env({}))


def test_a_process_failing_every_start_ends_the_server(supervisor: Supervisor) -> None:
    supervisor.spawn("front", ["front"])
    for _ in range(START_ATTEMPTS - 1):
        supervisor.restart("front", 3)  # uvicorn's exit code when it cannot bind
    assert not supervisor.stopping
    supervisor.restart("front", 3)
    assert supervisor.stopping
    assert supervisor.failed == f"front failed its first {START_ATTEMPTS} starts (exit 3); see its errors above"
    assert supervisor.children["front"] == ["front"]


def test_kills_are_always_restarted(supervisor: Supervisor) -> None:
    """kill -9 (a negative code) is an operator's or a fault's doing, never a start that failed."""
    supervisor.spawn("shard-0", ["shard"])
    for _ in range(3 * START_ATTEMPTS):
        supervisor.restart("shard-0", -9)
    assert not supervisor.stopping and supervisor.failed is None


def test_a_process_that_ran_steadily_is_restarted_however_often_it_fails(supervisor: Supervisor) -> None:
    supervisor.spawn("shard-0", ["shard"])
    supervisor.started["shard-0"] -= serve.STEADY_AFTER_S  # it served for a while, then crashed
    supervisor.restart("shard-0", 1)
    for _ in range(3 * START_ATTEMPTS):
        supervisor.restart("shard-0", 1)
    assert not supervisor.stopping and supervisor.failed is None
