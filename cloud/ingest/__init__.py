"""MQTT ingest: device batches from the broker into PostgreSQL, acked after commit."""
