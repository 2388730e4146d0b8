"""Live updates: an in-process fan-out of what the ingest commits, to SSE clients."""
