"""The sync engine: one pgmq queue, idempotent ingest RPCs, TTL freshness."""
