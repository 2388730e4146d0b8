"""Marks of the (vehicle, UTC day)s whose trips, driving events and rollups need recomputing.

The ingest marks the days it writes in its own transaction with one upsert. The upsert takes
the row's lock until the ingest commits, so a recompute that claims the day either waits for
those samples or skips the row and finds it again: no sample is ever left out of its day.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

import asyncpg

DirtyDay = tuple[str, uuid.UUID, date]  # tenant, vehicle, day

_MARK_SQL = """
    INSERT INTO trip_dirty (tenant_id, vehicle_id, day)
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::date[])
    ON CONFLICT (vehicle_id, day) DO UPDATE SET marks = trip_dirty.marks + 1"""


async def mark_dirty(conn: asyncpg.Connection, days: Iterable[DirtyDay]) -> int:
    """Mark ``days`` for recomputation (in the caller's transaction); return how many."""
    # Sorted, so that two writers marking the same days lock them in the same order (UUIDs
    # compare as their text does, without making it).
    unique = sorted(set(days), key=lambda d: (d[1], d[2]))
    if unique:
        await conn.execute(
            _MARK_SQL, [d[0] for d in unique], [d[1] for d in unique], [d[2] for d in unique]
        )
    return len(unique)


async def claim(conn: asyncpg.Connection, limit: int, settle_s: float) -> list[DirtyDay]:
    """Remove and return up to ``limit`` marks first made at least ``settle_s`` ago, oldest
    first; run it in the transaction that writes their recomputation, so a failure keeps
    them marked. Marks another writer holds are skipped until it commits."""
    rows = await conn.fetch(
        """DELETE FROM trip_dirty d USING (
               SELECT vehicle_id, day FROM trip_dirty
               WHERE marked_at <= now() - make_interval(secs => $2)
               ORDER BY marked_at, vehicle_id, day
               LIMIT $1 FOR UPDATE SKIP LOCKED) c
           WHERE d.vehicle_id = c.vehicle_id AND d.day = c.day
           RETURNING d.tenant_id, d.vehicle_id, d.day""",
        limit,
        settle_s,
    )
    return [(r["tenant_id"], r["vehicle_id"], r["day"]) for r in rows]


async def mark_tenant_history(conn: asyncpg.Connection, tenant: str, since: date) -> int:
    """Mark every day since ``since`` on which ``tenant`` has trips (after its rules change);
    return how many days were marked."""
    rows = await conn.fetch(
        "SELECT DISTINCT vehicle_id, day FROM trips WHERE tenant_id = $1 AND day >= $2",
        tenant,
        since,
    )
    return await mark_dirty(conn, [(tenant, r["vehicle_id"], r["day"]) for r in rows])
