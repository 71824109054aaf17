"""The shard engine: queues in memory, storage in SQLite, commands over ZeroMQ."""
