"""The TimescaleDB side of retention: chunks of a hypertable or continuous aggregate older than
a cut-off are dropped whole by ``drop_chunks`` (docs/decisions.md, D92). The native side drops
daily partitions (retention.py)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

DROP_CHUNKS_SQL = (
    "SELECT count(*)::int AS n FROM drop_chunks($1::regclass, older_than => $2::timestamptz)"
)


HAS_TIMESCALE_SQL = "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL AS x"
IS_HYPERTABLE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
    "WHERE hypertable_name = $1) AS x"
)


async def is_hypertable(conn: asyncpg.Connection, table: str) -> bool:
    """Return whether ``table`` is a TimescaleDB hypertable (False without the extension)."""
    if not await conn.fetchval(HAS_TIMESCALE_SQL):
        return False
    return bool(await conn.fetchval(IS_HYPERTABLE_SQL, table))


async def drop_chunks_before(conn: asyncpg.Connection, relation: str, cutoff: datetime) -> int:
    """Drop the chunks of ``relation`` wholly older than ``cutoff``; return how many went."""
    return int(await conn.fetchval(DROP_CHUNKS_SQL, relation, cutoff))
