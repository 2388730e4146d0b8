"""Rollups of samples per (vehicle, signal): 1 minute and 1 hour buckets of count, sum, min
and max. They are rebuilt for a whole (vehicle, day) whenever that day is recomputed, so late
data corrects them like trips. The SQL is kept here, small, in one place (D38). With
TimescaleDB (migrations/timescaledb/0017) they are continuous aggregates instead (D92)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

# Finite values only (NaN sorts above every number in PostgreSQL).
_FINITE = "value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
# Buckets are aligned to this origin, as the series API aligns its own.
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
ROLLUP_TABLES = {60: "signal_rollups_1m", 3600: "signal_rollups_1h"}


# True when the rollups are views over TimescaleDB's continuous aggregates.
ROLLUPS_ARE_VIEWS_SQL = "SELECT relkind = 'v' AS x FROM pg_class WHERE oid = $1::regclass"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


async def rebuild_day(conn: asyncpg.Connection, tenant: str, vehicle: uuid.UUID, day: date) -> None:
    """Replace ``vehicle``'s 1 minute and 1 hour rollups of ``day`` from its samples; with
    TimescaleDB the rollups are continuous aggregates the database keeps, and nothing is done."""
    if await conn.fetchval(ROLLUPS_ARE_VIEWS_SQL, ROLLUP_TABLES[60]):
        return
    start, end = day_bounds(day)
    for table in ROLLUP_TABLES.values():
        await conn.execute(
            f"DELETE FROM {table} WHERE vehicle_id = $1 AND bucket >= $2 AND bucket < $3",
            vehicle,
            start,
            end,
        )
    await conn.execute(
        f"""INSERT INTO signal_rollups_1m
                (tenant_id, vehicle_id, signal_id, bucket, count, total, min, max)
            SELECT $1, $2, signal_id, date_bin('1 minute', ts, $5), count(*), sum(value),
                   min(value), max(value)
            FROM samples_between($2, $3, $4)
            WHERE tenant_id = $1 AND {_FINITE}
            GROUP BY signal_id, date_bin('1 minute', ts, $5)""",
        tenant,
        vehicle,
        start,
        end,
        BUCKET_ORIGIN,
    )
    await conn.execute(
        """INSERT INTO signal_rollups_1h
               (tenant_id, vehicle_id, signal_id, bucket, count, total, min, max)
           SELECT $1, $2, signal_id, date_bin('1 hour', bucket, $5), sum(count), sum(total),
                  min(min), max(max)
           FROM signal_rollups_1m
           WHERE vehicle_id = $2 AND bucket >= $3 AND bucket < $4
           GROUP BY signal_id, date_bin('1 hour', bucket, $5)""",
        tenant,
        vehicle,
        start,
        end,
        BUCKET_ORIGIN,
    )


def rollup_for(bucket_s: int) -> int | None:
    """Return the width (60 or 3600 s) of the coarsest rollup a ``bucket_s`` series can be
    built from exactly, or None when only raw samples fit."""
    for width in sorted(ROLLUP_TABLES, reverse=True):
        if bucket_s >= width and bucket_s % width == 0:
            return width
    return None
