"""The shard's SQLite store: checkpoints on a thread of their own, and no index that writes pay for in vain."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shards.store import Batch, Store


def rows(start: int, n: int) -> list[tuple[str, int, str, str, int, bytes]]:
    return [(f"job-{i:09d}", i % 256, "q", "waiting", i, b"x" * 200) for i in range(start, start + n)]


def test_checkpoints_run_on_their_own_thread_and_move_the_wal_into_the_database(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store(path, checkpoint_thread=True)
    try:
        (autocheckpoint,) = next(store.db.cursor().execute("PRAGMA wal_autocheckpoint"))
        assert autocheckpoint == 0  # no commit of the loop's connection checkpoints inline
        empty = os.path.getsize(path)
        for k in range(20):
            store.write(Batch(jobs=rows(k * 500, 500)))
        assert store.checkpointer is not None
        deadline = time.monotonic() + 10
        while (os.path.getsize(path) <= empty or store.checkpointer.checkpoints < 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(path) > 2_000_000  # the pages reached the database file
        assert store.checkpointer.checkpoints >= 1
    finally:
        store.close()
    assert not store.checkpointer.is_alive()
    reopened = Store(path)
    assert reopened.get("job-000009999") == b"x" * 200
    reopened.close()


def test_no_index_on_slot(tmp_path: Path) -> None:
    """Resharding selects rows by `slot % shards`, which no index serves; one on `slot` only cost writes."""
    store = Store(str(tmp_path / "s.db"))
    names = {name for (name,) in store.db.cursor().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    store.close()
    assert "jobs_slot" not in names
