"""The aggregator's SQLite storage (apsw, WAL): one table of records per registry, written at once."""

from __future__ import annotations

import os
from collections.abc import Iterator

import apsw

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
