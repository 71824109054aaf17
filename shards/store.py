"""A shard's SQLite storage through apsw (WAL); written only by the journal's flush and by resharding."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import apsw

from shards import sql

Row = tuple[str, int, str, str, bytes]


class Store:
    def __init__(self, path: str, *, sync_full: bool = False) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = apsw.Connection(path)
        self.db.setbusytimeout(5000)
        cur = self.db.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={'FULL' if sync_full else 'NORMAL'}")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute(sql.SCHEMA)

    def write(self, upserts: Iterable[Row], deletes: Iterable[str]) -> None:
        """One transaction: every change of a flush window commits together or not at all."""
        with self.db:
            cur = self.db.cursor()
            cur.executemany(sql.UPSERT_JOB, upserts)
            cur.executemany(sql.DELETE_JOB, ((job_id,) for job_id in deletes))

    def live_blobs(self) -> Iterator[bytes]:
        for (blob,) in self.db.cursor().execute(sql.SELECT_LIVE_JOBS):
            yield blob

    def completed_counts(self) -> dict[str, int]:
        return {queue: count for queue, count in self.db.cursor().execute(sql.COUNT_COMPLETED)}

    def get(self, job_id: str) -> bytes | None:
        for (blob,) in self.db.cursor().execute(sql.SELECT_JOB, (job_id,)):
            return bytes(blob)
        return None

    def foreign_rows(self, shards: int, index: int) -> int:
        for (count,) in self.db.cursor().execute(sql.COUNT_FOREIGN_SLOTS, (shards, index)):
            return int(count)
        return 0

    def move_slots(self, other_path: str, shards: int, target: int) -> None:
        """Move every row whose slot belongs to shard `target` (of `shards`) into the store at `other_path`."""
        Store(other_path).close()  # make sure the target has the schema
        cur = self.db.cursor()
        cur.execute(sql.ATTACH, (other_path,))
        try:
            with self.db:
                cur.execute(sql.COPY_SLOTS_OUT, (shards, target))
                cur.execute(sql.DELETE_SLOTS, (shards, target))
        finally:
            cur.execute(sql.DETACH)

    def close(self) -> None:
        self.db.close()
