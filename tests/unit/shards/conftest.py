"""An engine on a fake clock over a real SQLite file, for the shard's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from shards.engine import Engine
from tests.support.clock import FakeClock
from tests.support.engines import make_engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> Engine:
    return make_engine(tmp_path / "s.db", clock)
