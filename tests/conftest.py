"""Shared fixtures: the contract suite runs every test against the in-process stand-in and real processes."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from bunq.app import create_app
from bunq.settings import Settings
from shards.engine import wall_clock_ms
from tests.support import BunqServer, LocalShardClient, make_engine


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    server = BunqServer(tmp_path_factory.mktemp("live") / "data", shards=2, fronts=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def standin_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("standin")
    env = {"BUNQ_SHARDS": "2", "BUNQ_DATA_DIR": str(root), "BUNQ_RUN_DIR": tempfile.mkdtemp(prefix="bq")}
    settings = Settings.from_env({**os.environ, **env})
    engines = [
        make_engine(root / f"shard-{i}.db", wall_clock_ms, shard=i, shards=2, slots=settings.slots) for i in range(2)
    ]
    app = create_app(settings, LocalShardClient(settings, engines))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(params=["standin", "processes"])
def api(request: pytest.FixtureRequest) -> Any:
    """An HTTP client on bunq: the app over in-process engines, or `bunq serve` over real sockets."""
    if request.param == "standin":
        yield request.getfixturevalue("standin_app")
        return
    server: BunqServer = request.getfixturevalue("live_server")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue name unique to this test (tests share servers)."""
    return "t-" + re.sub(r"[^A-Za-z0-9_.:-]", "-", request.node.name)[:200]
