"""When the journal's changes reach the disk, and the replies that wait for it (durable pushes).

Without a writer (tests, tools) a flush writes on the caller's thread. With one (a running shard), the
loop hands each large window's batch to the writer thread and goes on serving; replies waiting for a
commit are answered when the writer reports that the batch holding them committed. A small window (a
few durable pushes) is written at once on the loop instead, when nothing is in flight: handing it over
and hearing back would take longer than the write. At most `MAX_IN_FLIGHT` batches are out at once;
past that the journal keeps collecting, and the next batch is larger.
"""

from __future__ import annotations

import collections
import itertools
import logging
import select

from bunq.protocol import Error, Reply
from shards.journal import Journal, Snapshot
from shards.store import Batch
from shards.waiters import Respond
from shards.writer import Writer

log = logging.getLogger("bunq.shard")

Waiting = list[tuple[Respond, Reply]]

MAX_IN_FLIGHT = 2
WRITE_HERE_BELOW = 256  # records: a window this small is written on the loop (the handoff costs more)
PERSIST_FAILED = Error("internal", "Failed to persist job")


class Commits:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.writer: Writer | None = None
        self.waiting: Waiting = []  # for the next commit; changed in place (the engine shares it)
        # batch number → the replies its commit answers; its records are the journal's `in_flight`, in order
        self.in_flight: collections.OrderedDict[int, Waiting] = collections.OrderedDict()
        self.numbers = itertools.count(1)

    def after_next_commit(self, respond: Respond, reply: Reply) -> None:
        self.waiting.append((respond, reply))

    def flush(self) -> None:
        """Commit everything recorded so far before returning, and answer what waited for it."""
        if self.writer is None:
            self._write_here()
            return
        self.flush_soon(force=True)
        while self.in_flight:
            ready, _, _ = select.select([self.writer.wake_fd], [], [], 1.0)
            if not ready and not self.writer.is_alive():
                raise RuntimeError("the shard's writer thread is gone; its batches will not be written")
            self.on_written()

    def flush_soon(self, *, force: bool = False) -> None:
        """Hand what is recorded to the writer (unless `MAX_IN_FLIGHT` batches are out and not `force`)."""
        if self.writer is None:
            self._write_here()
            return
        if self.in_flight and len(self.in_flight) >= MAX_IN_FLIGHT and not force:
            return  # on_written hands it over when the writer catches up
        replies = self._take_waiting()
        taken = self.journal.take()
        if taken is None:
            if not self.in_flight:
                _answer(replies, None)
            else:  # what they wait for is in a batch already out: its commit answers them
                next(reversed(self.in_flight.values())).extend(replies)
            return
        batch, snapshot = taken
        if not self.in_flight and snapshot.size() < WRITE_HERE_BELOW:
            self._write_on_loop(batch, snapshot, replies)
            return
        number = next(self.numbers)
        self.in_flight[number] = replies
        self.journal.in_flight.append(snapshot)
        self.writer.submit(number, batch)

    def on_written(self) -> None:
        """The writer reported: answer the batches that committed, record again those that did not."""
        assert self.writer is not None
        failed = False
        for number, error in self.writer.written():
            replies = self.in_flight.pop(number)
            snapshot = self.journal.in_flight.popleft()  # batches are written, and reported, in order
            if error is not None:
                self.journal.restore(snapshot)  # written again at the next flush, not at once
                failed = True
            _answer(replies, error)
        if self.waiting or (self.journal.pending() and not self.in_flight and not failed):
            self.flush_soon()  # what the writer being busy held back

    def _write_on_loop(self, batch: Batch, snapshot: Snapshot, replies: Waiting) -> None:
        """Write on the writer's connection from this thread: safe while it has nothing in flight, since its
        thread then waits for work (and a task only ever runs while this thread waits for it)."""
        assert self.writer is not None
        try:
            self.writer.store.write_all([batch])
        except Exception as exc:
            log.exception("journal flush failed")
            self.journal.restore(snapshot)
            _answer(replies, exc)
            return
        _answer(replies, None)

    def _take_waiting(self) -> Waiting:
        replies = list(self.waiting)
        self.waiting.clear()
        return replies

    def _write_here(self) -> None:
        replies = self._take_waiting()
        try:
            self.journal.flush()
        except Exception as exc:
            log.exception("journal flush failed")
            _answer(replies, exc)
            return
        _answer(replies, None)


def _answer(replies: Waiting, error: BaseException | None) -> None:
    for respond, reply in replies:
        respond(reply if error is None else PERSIST_FAILED)
