"""Queue → slot → shard routing, and UUID v7 job ids that carry their slot."""

from __future__ import annotations

import random
import time
import zlib

_rand = random.Random()


def slot_of(queue: str, slots: int) -> int:
    return zlib.crc32(queue.encode()) % slots


def shard_of_slot(slot: int, shards: int) -> int:
    return slot % shards


_prefixes: dict[tuple[int, int], str] = {}


def _prefix(ms: int, slot: int) -> str:
    """`tttttttt-tttt-7sss-` for a millisecond and a slot (cached: ids come in bursts within one ms)."""
    key = (ms, slot)
    prefix = _prefixes.get(key)
    if prefix is None:
        if len(_prefixes) > 4096:
            _prefixes.clear()
        h = f"{ms & 0xFFFF_FFFF_FFFF:012x}7{slot & 0xFFF:03x}"
        prefix = _prefixes[key] = f"{h[:8]}-{h[8:12]}-{h[12:16]}-"
    return prefix


def new_job_id(slot: int, ms: int | None = None, seed: int | None = None) -> str:
    """A UUID v7 whose 12-bit rand_a field holds the slot (so `GET /jobs/:id` goes to one shard).

    `ms` and `seed` (62 bits) make it deterministic, for ids that must come out the same twice."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    low = (_rand.getrandbits(62) if seed is None else seed & ((1 << 62) - 1)) | (0b10 << 62)
    tail = f"{low:016x}"
    return f"{_prefix(ms, slot)}{tail[:4]}-{tail[4:]}"


def shards_for_id(job_id: str, slots: int, shards: int) -> list[int]:
    """Where a job may live: its slot's shard for a bunq id, every shard for an id a client chose."""
    slot = slot_of_id(job_id)
    if slot is None or slot >= slots:
        return list(range(shards))
    return [shard_of_slot(slot, shards)]


def slot_of_id(job_id: str) -> int | None:
    """The slot a bunq-made id carries, or None for an id a client chose."""
    if len(job_id) != 36 or job_id[14] != "7" or job_id[8] != "-" or job_id[13] != "-" or job_id[18] != "-":
        return None
    try:
        return int(job_id[15:18], 16)
    except ValueError:
        return None
