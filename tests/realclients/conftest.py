"""bunqueue's own clients against `bunq serve`: its TypeScript client run by Bun, and its Python SDK.

The TypeScript side is installed here from the npm registry, once, into `.cache/realclients/` (pinned to the
versions the reference server runs: bunqueue 2.9.5 on Bun 1.4.4, whose platform package ships the binary);
the Python SDK (`bunqueue-client`) is a dev dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ROOT, BunqServer

CACHE = ROOT / ".cache" / "realclients"
PACKAGES = ("bunqueue@2.9.5", "@oven/bun-linux-x64@1.4.4")
BUN = CACHE / "node_modules" / "@oven" / "bun-linux-x64" / "bin" / "bun"
SCENARIOS = Path(__file__).parent / "ts" / "scenarios.mjs"


def install() -> Path:
    if not (BUN.exists() and (CACHE / "node_modules" / "bunqueue" / "package.json").exists()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install bunqueue's TypeScript client (.ci/run installs Node.js and npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--ignore-scripts", *PACKAGES],
            check=True,
            capture_output=True,
            timeout=300,
        )
    script = CACHE / "scenarios.mjs"  # beside its node_modules, so `bunqueue/client` resolves
    shutil.copyfile(SCENARIOS, script)
    return script


@pytest.fixture(scope="session")
def scenarios() -> Path:
    return install()


class Bun:
    """Runs one scenario of `ts/scenarios.mjs` against a server and returns the JSON it printed last."""

    def __init__(self, script: Path, server: BunqServer, token: str | None = None) -> None:
        self.script = script
        self.server = server
        self.token = token

    def env(self, queue: str, **extra: Any) -> dict[str, str]:
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.server.tcp_port), "QUEUE": queue}
        if self.token is not None:
            env["TOKEN"] = self.token
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, scenario: str, queue: str, timeout: float = 40, **extra: Any) -> Any:
        done = subprocess.run(
            [str(BUN), str(self.script), scenario],
            env=self.env(queue, **extra),
            cwd=self.script.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith(("{", "["))]
        assert done.returncode == 0 and lines, f"{scenario} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return json.loads(lines[-1])

    def start(self, scenario: str, queue: str, **extra: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(BUN), str(self.script), scenario],
            env=self.env(queue, **extra),
            cwd=self.script.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    """One `bunq serve` (2 shards) for a module's tests; each test uses queues of its own."""
    server = BunqServer(tmp_path_factory.mktemp("realclients") / "data", shards=2)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(tmp_path_factory.mktemp("realclients-auth") / "data", shards=1, AUTH_TOKENS="s3cret")
    server.start()
    yield server
    server.stop()
