"""The aggregator process: forwards events to the fronts and owns the cluster-wide registries
(crons, webhooks, workers), persisted in its own SQLite file."""
