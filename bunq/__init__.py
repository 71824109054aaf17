"""bunq: a sharded job queue server speaking the bunqueue HTTP API (front, contract and aggregator)."""

__version__ = "0.1.0"
