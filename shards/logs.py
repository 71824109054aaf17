"""Per-job log lines: at most 100 per job and 10,000 jobs per shard (oldest evicted), written behind."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import msgspec

from bunq.protocol import LogLevel

if TYPE_CHECKING:
    from shards.journal import Journal
    from shards.store import Store

MAX_PER_JOB = 100
MAX_JOBS = 10_000


class LogLine(msgspec.Struct, array_like=True):
    timestamp: int
    level: LogLevel
    message: str


class LogLineView(msgspec.Struct):
    timestamp: int
    level: LogLevel
    message: str


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[LogLine]).decode
_json = msgspec.json.Encoder().encode


class JobLogs:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.by_job: OrderedDict[str, list[LogLine]] = OrderedDict()
        self.slots: dict[str, int] = {}

    def add(self, job_id: str, slot: int, line: LogLine) -> None:
        lines = self.by_job.pop(job_id, None) or []
        lines.append(line)
        del lines[:-MAX_PER_JOB]
        self.by_job[job_id] = lines
        self.slots[job_id] = slot
        self.journal.put_logs(job_id, slot, _encode(lines))
        while len(self.by_job) > MAX_JOBS:
            evicted, _ = self.by_job.popitem(last=False)
            self.slots.pop(evicted, None)
            self.journal.delete_logs(evicted)

    def get(self, job_id: str) -> list[bytes]:
        return [_json(LogLineView(line.timestamp, line.level, line.message)) for line in self.by_job.get(job_id, ())]

    def drop(self, job_id: str) -> None:
        if self.by_job.pop(job_id, None) is not None:
            self.slots.pop(job_id, None)
            self.journal.delete_logs(job_id)

    def load(self, store: Store) -> None:
        for job_id, slot, blob in store.log_rows():
            self.by_job[job_id] = _decode(blob)
            self.slots[job_id] = slot
