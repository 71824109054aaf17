"""Shared fixtures: the contract suite runs every test on both clusters (`tests.support.cluster`)."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from bunq.app import create_app
from bunq.settings import Settings
from tests.support.clock import FakeClock
from tests.support.cluster import Cluster, InProcess, Processes
from tests.support.inprocess import InProcessShards
from tests.support.processes import BunqServer

# what the contract tests need of either cluster: webhooks to a local receiver, workers that expire soon
CONTRACT_ENV = {"BUNQ_SHARDS": "2", "BUNQ_WEBHOOK_ALLOW": "127.0.0.1/32", "BUNQ_WORKER_TIMEOUT_MS": "1500"}


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(tmp_path_factory.mktemp("live") / "data", shards=2, fronts=1, **CONTRACT_ENV)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    root = tmp_path_factory.mktemp("in-process")
    env = {**os.environ, **CONTRACT_ENV, "BUNQ_DATA_DIR": str(root), "BUNQ_RUN_DIR": tempfile.mkdtemp(prefix="bq")}
    settings = Settings.from_env(env)
    shards = InProcessShards(settings, root, FakeClock(time.time_ns() // 1_000_000))
    with TestClient(create_app(settings, shards), raise_server_exceptions=False) as client:
        yield InProcess(client, shards)


@pytest.fixture(params=["in-process", "processes"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """bunq as a contract test sees it: the app over in-process engines, or `bunq serve` over real sockets."""
    if request.param == "in-process":
        yield request.getfixturevalue("in_process")
        return
    server: BunqServer = request.getfixturevalue("live_server")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield Processes(client)


@pytest.fixture
def api(cluster: Cluster) -> Any:
    """The cluster's HTTP client."""
    return cluster.http


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name unique to this test (tests share servers)."""
    return "t-" + re.sub(r"[^A-Za-z0-9_.:-]", "-", request.node.name)[:200]
