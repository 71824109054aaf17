"""A shard's SQLite storage through apsw (WAL); written only by the journal's flush and by resharding."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import apsw

from shards import sql

if TYPE_CHECKING:
    from shards.writer import Writer

Row = tuple[str, int, str, str, int, bytes]

log = logging.getLogger("bunq.shard")

CHECKPOINT_INTERVAL_S = 0.5


@dataclass
class Batch:
    """Everything one flush writes."""

    jobs: list[Row] = field(default_factory=list)
    deleted_jobs: list[str] = field(default_factory=list)
    logs: list[tuple[str, int, bytes]] = field(default_factory=list)
    deleted_logs: list[str] = field(default_factory=list)
    outbox: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    deleted_outbox: list[tuple[str, str]] = field(default_factory=list)
    queues: list[tuple[str, int, bytes]] = field(default_factory=list)
    deleted_queues: list[str] = field(default_factory=list)


class Store:
    """With `checkpoint_thread`, WAL checkpoints (copying committed pages into the database file, and its
    fsync) run on a thread of their own instead of inside whichever commit crossed SQLite's threshold:
    apsw releases the GIL while SQLite works, so the shard's loop keeps serving meanwhile."""

    def __init__(self, path: str, *, sync_full: bool = False, checkpoint_thread: bool = False) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = apsw.Connection(path)
        self.db.setbusytimeout(5000)
        cur = self.db.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={'FULL' if sync_full else 'NORMAL'}")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute(sql.SCHEMA)
        self.writer: Writer | None = None  # once attached, every write goes through its thread
        self.checkpointer: Checkpointer | None = None
        if checkpoint_thread:
            cur.execute("PRAGMA wal_autocheckpoint=0")
            self.checkpointer = Checkpointer(path)

    def write(self, batch: Batch) -> None:
        """One transaction: every change of a flush window commits together or not at all."""
        self.write_all([batch])

    def write_all(self, batches: list[Batch]) -> None:
        """Several flush windows in one transaction, in order (the writer's group commit)."""
        assert self.writer is None, "with a writer attached, batches go to Writer.submit"
        with self.db:
            cur = self.db.cursor()
            for batch in batches:
                _write(cur, batch)

    def queue_rows(self) -> Iterator[tuple[str, bytes]]:
        for name, blob in self.db.cursor().execute(sql.SELECT_QUEUES):
            yield name, bytes(blob)

    def completed_page(self, queue: str, limit: int, offset: int) -> list[bytes]:
        """Completed jobs of a queue, newest first (call after a flush: it reads committed rows)."""
        return [bytes(b) for (b,) in self.db.cursor().execute(sql.SELECT_COMPLETED_PAGE, (queue, limit, offset))]

    def completed_before(self, queue: str, before: int, limit: int) -> list[bytes]:
        """The oldest completed jobs of a queue stamped before `before`, through the partial (queue, ts) index."""
        return [bytes(b) for (b,) in self.db.cursor().execute(sql.SELECT_COMPLETED_BEFORE, (queue, before, limit))]

    def delete_expired(self) -> None:
        """Drop the records of expired jobs that versions before this one kept (a job whose ttl passes is
        discarded now); at start-up, before the writer thread runs."""
        with self.db:
            self.db.cursor().execute(sql.DELETE_EXPIRED)

    def completed_all(self, queue: str) -> list[bytes]:
        return [bytes(b) for (b,) in self.db.cursor().execute(sql.SELECT_COMPLETED_ALL, (queue,))]

    def delete_queue_rows(self, queue: str) -> None:
        """Every job and log line of a queue, in one transaction (obliterate)."""
        if self.writer is not None:
            self.writer.call(lambda store: store.delete_queue_rows(queue))
            return
        with self.db:
            cur = self.db.cursor()
            cur.execute(sql.DELETE_QUEUE_LOGS, (queue,))
            cur.execute(sql.DELETE_QUEUE_JOBS, (queue,))

    def log_rows(self) -> Iterator[tuple[str, int, bytes]]:
        for job_id, slot, blob in self.db.cursor().execute(sql.SELECT_LOGS):
            yield job_id, slot, bytes(blob)

    def outbox_rows(self) -> Iterator[tuple[str, str, int, bytes]]:
        for parent_id, dep_id, slot, blob in self.db.cursor().execute(sql.SELECT_OUTBOX):
            yield parent_id, dep_id, slot, bytes(blob)

    def live_blobs(self) -> Iterator[bytes]:
        for (blob,) in self.db.cursor().execute(sql.SELECT_LIVE_JOBS):
            yield blob

    def completed_counts(self) -> dict[str, int]:
        return {queue: count for queue, count in self.db.cursor().execute(sql.COUNT_COMPLETED)}

    def get(self, job_id: str) -> bytes | None:
        for (blob,) in self.db.cursor().execute(sql.SELECT_JOB, (job_id,)):
            return bytes(blob)
        return None

    def move_slots(self, other_path: str, shards: int, target: int) -> None:
        """Move every row whose slot belongs to shard `target` (of `shards`) into the store at `other_path`."""
        Store(other_path).close()  # make sure the target has the schema
        cur = self.db.cursor()
        cur.execute(sql.ATTACH, (other_path,))
        try:
            with self.db:
                for table in sql.SLOTTED_TABLES:
                    cur.execute(sql.COPY_SLOTS_OUT.format(table=table), (shards, target))
                    cur.execute(sql.DELETE_SLOTS.format(table=table), (shards, target))
        finally:
            cur.execute(sql.DETACH)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.close()  # the last connection to close checkpoints what is left


def _write(cur: apsw.Cursor, batch: Batch) -> None:
    if batch.jobs:
        cur.executemany(sql.UPSERT_JOB, batch.jobs)
    if batch.deleted_jobs:
        cur.executemany(sql.DELETE_JOB, ((job_id,) for job_id in batch.deleted_jobs))
    if batch.logs:
        cur.executemany(sql.UPSERT_LOGS, batch.logs)
    if batch.deleted_logs:
        cur.executemany(sql.DELETE_LOGS, ((job_id,) for job_id in batch.deleted_logs))
    if batch.outbox:
        cur.executemany(sql.UPSERT_OUTBOX, batch.outbox)
    if batch.deleted_outbox:
        cur.executemany(sql.DELETE_OUTBOX, batch.deleted_outbox)
    if batch.queues:
        cur.executemany(sql.UPSERT_QUEUE, batch.queues)
    if batch.deleted_queues:
        cur.executemany(sql.DELETE_QUEUE, ((name,) for name in batch.deleted_queues))


class Checkpointer(threading.Thread):
    """Passive WAL checkpoints every `CHECKPOINT_INTERVAL_S` on a connection of its own. A passive
    checkpoint never waits for the writer, so it cannot stall the shard's loop; when it catches up, the
    next commit starts the WAL file over, which keeps it from growing."""

    def __init__(self, path: str) -> None:
        super().__init__(name="checkpointer", daemon=True)
        self.db = apsw.Connection(path)
        self.db.cursor().execute("PRAGMA journal_mode").fetchall()  # opens the file: the WAL is known from here
        self.stopping = threading.Event()
        self.checkpoints = 0
        self.start()

    def run(self) -> None:
        while not self.stopping.wait(CHECKPOINT_INTERVAL_S):
            try:
                self.db.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
                self.checkpoints += 1
            except apsw.Error as exc:
                log.warning("WAL checkpoint failed (the next one tries again): %s", exc)
        self.db.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join()
