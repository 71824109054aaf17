"""Every SQL statement a shard runs, by name; only `shards.store` executes them."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id    TEXT PRIMARY KEY,
    slot  INTEGER NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    blob  BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_state_queue ON jobs (state, queue);
CREATE INDEX IF NOT EXISTS jobs_slot ON jobs (slot);
"""

UPSERT_JOB = "INSERT OR REPLACE INTO jobs (id, slot, queue, state, blob) VALUES (?, ?, ?, ?, ?)"
DELETE_JOB = "DELETE FROM jobs WHERE id = ?"
SELECT_LIVE_JOBS = "SELECT blob FROM jobs WHERE state != 'completed'"
COUNT_COMPLETED = "SELECT queue, COUNT(*) FROM jobs WHERE state = 'completed' GROUP BY queue"
SELECT_JOB = "SELECT blob FROM jobs WHERE id = ?"
COUNT_FOREIGN_SLOTS = "SELECT COUNT(*) FROM jobs WHERE slot % ? != ?"
ATTACH = "ATTACH DATABASE ? AS other"
DETACH = "DETACH DATABASE other"
COPY_SLOTS_OUT = "INSERT OR REPLACE INTO other.jobs SELECT * FROM main.jobs WHERE slot % ? = ?"
DELETE_SLOTS = "DELETE FROM main.jobs WHERE slot % ? = ?"
