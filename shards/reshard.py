"""Start-up resharding: after a change of shard count, move every slot's rows into the file that now owns it.

The data directory's manifest records the slot count (fixed for its lifetime) and the shard count the
files are laid out for. Moving is idempotent (copy with replace, then delete), so a crash part-way is
finished by the next start.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re

from bunq.errors import ConfigError
from shards.server import store_path
from shards.store import Store

log = logging.getLogger("bunq.reshard")

MANIFEST = "manifest.json"


def read_manifest(data_dir: str) -> dict[str, int] | None:
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        manifest: dict[str, int] = json.load(f)
    return manifest


def write_manifest(data_dir: str, slots: int, shards: int) -> None:
    path = os.path.join(data_dir, MANIFEST)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"version": 1, "slots": slots, "shards": shards}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _check_slots(data_dir: str, manifest: dict[str, int], slots: int) -> None:
    if manifest.get("slots") != slots:
        raise ConfigError(
            f"{data_dir} was created with {manifest.get('slots')} slots; BUNQ_SLOTS={slots} cannot change"
        )


def check_layout(data_dir: str, slots: int, shards: int, index: int) -> None:
    """Refuse to serve shard `index` from files laid out for another shard or slot count: it would answer
    for queues whose rows sit in another file, and write new ones where the next `prepare` does not look."""
    if not 0 <= index < shards:
        raise ConfigError(f"shard {index} does not exist with BUNQ_SHARDS={shards} (shards are 0 to {shards - 1})")
    manifest = read_manifest(data_dir)
    if manifest is None:
        return
    _check_slots(data_dir, manifest, slots)
    if manifest.get("shards") != shards:
        raise ConfigError(
            f"{data_dir} is laid out for {manifest.get('shards')} shard(s), BUNQ_SHARDS={shards}: "
            "run `bunq prepare` with the new count before the shards start"
        )


def shard_files(data_dir: str) -> list[int]:
    found = []
    for path in glob.glob(os.path.join(data_dir, "shard-*.db")):
        match = re.fullmatch(r"shard-(\d+)\.db", os.path.basename(path))
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def prepare(data_dir: str, slots: int, shards: int) -> None:
    """Make `data_dir` ready for `shards` shards, moving data when the count changed since the last start."""
    os.makedirs(data_dir, exist_ok=True)
    manifest = read_manifest(data_dir)
    if manifest is not None:
        _check_slots(data_dir, manifest, slots)
    files = shard_files(data_dir)
    if manifest is not None and manifest.get("shards") == shards and all(i < shards for i in files):
        return
    for index in files:
        store = Store(store_path(data_dir, index))
        try:
            for target in range(shards):
                if target != index:
                    store.move_slots(store_path(data_dir, target), shards, target)
        finally:
            store.close()
        if index >= shards:
            for suffix in ("", "-wal", "-shm"):
                with_suffix = store_path(data_dir, index) + suffix
                if os.path.exists(with_suffix):
                    os.remove(with_suffix)
    write_manifest(data_dir, slots, shards)
    if files:
        log.info("resharded %s: %d file(s) → %d shard(s)", data_dir, len(files), shards)
