"""Which storage backend a database offers: TimescaleDB when the extension is installed or can
be (available and preloaded), else native PostgreSQL partitioning (docs/decisions.md, D92)."""

from __future__ import annotations

from typing import Literal

import asyncpg

Backend = Literal["native", "timescaledb"]

_DETECT = """
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
        OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
            AND current_setting('shared_preload_libraries') LIKE '%timescaledb%')"""


async def storage_backend(conn: asyncpg.Connection) -> Backend:
    """Return ``"timescaledb"`` when the database can use the extension, else ``"native"``."""
    return "timescaledb" if await conn.fetchval(_DETECT) else "native"
