"""The shard's SQLite writer: a thread of its own that commits the journal's batches, in order.

apsw releases the GIL while SQLite works, so the loop keeps serving while a batch is written. Batches
that queue up while one is written go out together in the next transaction (group commit). When a
transaction ends, the writer reports which batches it held (and whether they committed) through a
pipe whose end the shard's poller watches. Writes that are not batches (obliterating a queue, dropping
expired records) run on this thread too, after every batch before them, so that nothing else ever
writes to the database while the shard runs.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from shards.store import Batch, Store

log = logging.getLogger("bunq.shard")

Outcome = tuple[int, BaseException | None]  # a batch's number, and why it did not commit


class Task:
    """A write that is not a batch, run on the writer's connection; the caller waits for its result."""

    def __init__(self, fn: Callable[[Store], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Writer(threading.Thread):
    def __init__(self, path: str, *, sync_full: bool = False) -> None:
        super().__init__(name="writer", daemon=True)
        self.store = Store(path, sync_full=sync_full)
        self.store.db.cursor().execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
        self.inbox: queue.SimpleQueue[tuple[int, Batch] | Task | None] = queue.SimpleQueue()
        self.outcomes: collections.deque[Outcome] = collections.deque()
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        self.start()

    def submit(self, number: int, batch: Batch) -> None:
        self.inbox.put((number, batch))

    def call(self, fn: Callable[[Store], Any]) -> Any:
        """Run `fn` on the writer's connection after every batch submitted before it; its result."""
        task = Task(fn)
        self.inbox.put(task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def written(self) -> list[Outcome]:
        """The batches whose transaction ended since the last call, in order."""
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except BlockingIOError:
            pass
        done = []
        while self.outcomes:
            done.append(self.outcomes.popleft())
        return done

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                break
            if isinstance(item, Task):
                self._run_task(item)
                continue
            batches = [item]
            stop = self._gather(batches)
            self._commit(batches)
            if stop:
                break
        self.store.close()

    def _gather(self, batches: list[tuple[int, Batch]]) -> bool:
        """Take the batches already queued behind the first (not past a task); True when stop was asked."""
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            if isinstance(item, Task):
                self._commit(batches)
                batches.clear()
                self._run_task(item)
                continue
            batches.append(item)

    def _commit(self, batches: list[tuple[int, Batch]]) -> None:
        if not batches:
            return
        error: BaseException | None = None
        try:
            self.store.write_all([batch for _, batch in batches])
        except Exception as exc:  # reported to the loop, which answers the waiting replies and retries
            log.exception("writing %d batch(es) failed", len(batches))
            error = exc
        self.outcomes.extend((number, error) for number, _ in batches)
        os.write(self._wake_w, b"w")

    def _run_task(self, task: Task) -> None:
        try:
            task.result = task.fn(self.store)
        except Exception as exc:
            task.error = exc
        task.done.set()

    def stop(self) -> None:
        """Write what was submitted, then end the thread (and close its connection)."""
        self.inbox.put(None)
        self.join()
        os.close(self.wake_fd)
        os.close(self._wake_w)
