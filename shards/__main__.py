"""`python -m shards INDEX`: run shard INDEX (the supervisor and the Procfile start it this way)."""

from shards.server import main

main()
