"""The aggregator's SQLite storage (apsw, WAL): one table of records per registry, written at once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import apsw
import msgspec

from bunq.errors import NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""
UPSERT = "INSERT OR REPLACE INTO records (kind, key, blob) VALUES (?, ?, ?)"
DELETE = "DELETE FROM records WHERE kind = ? AND key = ?"
SELECT_KIND = "SELECT key, blob FROM records WHERE kind = ?"


class RegistryStore:
    """Registries change rarely, so each change commits on its own before it is acknowledged."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = apsw.Connection(path)
        self.db.setbusytimeout(5000)
        cur = self.db.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(SCHEMA)

    def put(self, kind: str, key: str, blob: bytes) -> None:
        with self.db:
            self.db.cursor().execute(UPSERT, (kind, key, blob))

    def delete(self, kind: str, key: str) -> None:
        with self.db:
            self.db.cursor().execute(DELETE, (kind, key))

    def load(self, kind: str) -> Iterator[tuple[str, bytes]]:
        for key, blob in self.db.cursor().execute(SELECT_KIND, (kind,)):
            yield key, bytes(blob)

    def close(self) -> None:
        self.db.close()


T = TypeVar("T", bound=msgspec.Struct)


class Records(Generic[T]):
    """One registry's entries, in memory by key and written through to the store on every change."""

    def __init__(
        self, store: RegistryStore, kind: str, kind_type: type[T], key: Callable[[T], str], missing: str
    ) -> None:
        self.store = store
        self.kind = kind
        self.key = key
        self.missing = missing  # the NotFound message for an unknown key
        self.items: dict[str, T] = {k: msgspec.msgpack.decode(blob, type=kind_type) for k, blob in store.load(kind)}

    def save(self, item: T) -> None:
        key = self.key(item)
        self.items[key] = item
        self.store.put(self.kind, key, msgspec.msgpack.encode(item))

    def get(self, key: str) -> T:
        item = self.items.get(key)
        if item is None:
            raise NotFound(self.missing)
        return item

    def delete(self, key: str) -> T:
        item = self.items.pop(key)
        self.store.delete(self.kind, key)
        return item
