"""Every SQL statement a shard runs, by name; only `shards.store` executes them."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id    TEXT PRIMARY KEY,
    slot  INTEGER NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    ts    INTEGER NOT NULL,
    blob  BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_completed ON jobs (queue, ts) WHERE state = 'completed';
-- holds only the expired rows earlier versions kept (none are written now), so that dropping them at
-- start-up reads those rows, not the whole table
CREATE INDEX IF NOT EXISTS jobs_expired ON jobs (queue, ts) WHERE state = 'expired';
DROP INDEX IF EXISTS jobs_slot;
CREATE TABLE IF NOT EXISTS logs (
    job_id TEXT PRIMARY KEY,
    slot   INTEGER NOT NULL,
    blob   BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    slot INTEGER NOT NULL,
    blob BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    parent_id TEXT NOT NULL,
    dep_id    TEXT NOT NULL,
    slot      INTEGER NOT NULL,
    blob      BLOB NOT NULL,
    PRIMARY KEY (parent_id, dep_id)
) WITHOUT ROWID;
"""

SLOTTED_TABLES = ("jobs", "logs", "outbox", "queues")

UPSERT_JOB = "INSERT OR REPLACE INTO jobs (id, slot, queue, state, ts, blob) VALUES (?, ?, ?, ?, ?, ?)"
DELETE_JOB = "DELETE FROM jobs WHERE id = ?"
SELECT_LIVE_JOBS = "SELECT blob FROM jobs WHERE state NOT IN ('completed', 'expired')"
COUNT_COMPLETED = "SELECT queue, COUNT(*) FROM jobs WHERE state = 'completed' GROUP BY queue"
SELECT_JOB = "SELECT blob FROM jobs WHERE id = ?"
SELECT_COMPLETED_PAGE = (
    "SELECT blob FROM jobs WHERE queue = ? AND state = 'completed' ORDER BY ts DESC LIMIT ? OFFSET ?"
)
SELECT_COMPLETED_BEFORE = "SELECT blob FROM jobs WHERE queue = ? AND state = 'completed' AND ts < ? ORDER BY ts LIMIT ?"
DELETE_EXPIRED = "DELETE FROM jobs WHERE state = 'expired'"  # kept by versions before expired jobs were discarded
SELECT_COMPLETED_ALL = "SELECT blob FROM jobs WHERE queue = ? AND state = 'completed'"
DELETE_QUEUE_LOGS = "DELETE FROM logs WHERE job_id IN (SELECT id FROM jobs WHERE queue = ?)"
DELETE_QUEUE_JOBS = "DELETE FROM jobs WHERE queue = ?"
UPSERT_QUEUE = "INSERT OR REPLACE INTO queues (name, slot, blob) VALUES (?, ?, ?)"
DELETE_QUEUE = "DELETE FROM queues WHERE name = ?"
SELECT_QUEUES = "SELECT name, blob FROM queues"
UPSERT_LOGS = "INSERT OR REPLACE INTO logs (job_id, slot, blob) VALUES (?, ?, ?)"
DELETE_LOGS = "DELETE FROM logs WHERE job_id = ?"
SELECT_LOGS = "SELECT job_id, slot, blob FROM logs"
UPSERT_OUTBOX = "INSERT OR REPLACE INTO outbox (parent_id, dep_id, slot, blob) VALUES (?, ?, ?, ?)"
DELETE_OUTBOX = "DELETE FROM outbox WHERE parent_id = ? AND dep_id = ?"
SELECT_OUTBOX = "SELECT parent_id, dep_id, slot, blob FROM outbox"
ATTACH = "ATTACH DATABASE ? AS other"
DETACH = "DETACH DATABASE other"
COPY_SLOTS_OUT = "INSERT OR REPLACE INTO other.{table} SELECT * FROM main.{table} WHERE slot % ? = ?"
DELETE_SLOTS = "DELETE FROM main.{table} WHERE slot % ? = ?"
