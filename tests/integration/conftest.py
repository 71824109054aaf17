"""The integration tests' `server`: `bunq serve` in a temp dir, shaped by the test's `bunq` marker
(`@pytest.mark.bunq(shards=2, fronts=2, BUNQ_WORKER_TIMEOUT_MS="1500")`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import BunqServer


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    """A server that requires one of two tokens, `secret` or `other`; one per test module."""
    server = BunqServer(tmp_path_factory.mktemp("auth") / "data", shards=2, AUTH_TOKENS="secret,other")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BunqServer]:
    marker = request.node.get_closest_marker("bunq")
    options = {"shards": 2, **(marker.kwargs if marker else {})}
    srv = BunqServer(tmp_path / "data", **options)
    srv.start()
    yield srv
    srv.stop()
