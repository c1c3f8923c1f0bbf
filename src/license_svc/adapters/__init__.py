"""PostgreSQL: the event store, the pools, database health, the pepper's fingerprint,
the embedded database."""
