"""Call detail records: per-call and per-leg records, the queue event log, the durable buffer
(a Redis stream), the writer that moves it into a store (SQLite or PostgreSQL), and KPI reports."""
