"""Compaction of closed days (native backend): a day's points in ``sample_points`` become one
``sample_blocks`` row per (series, hour), the hour's offsets and values as arrays that TOAST
compresses (docs/decisions.md, D91). Measured by ``fleetlink bench storage``: a tenth of the
bytes per sample of a row per sample, and long reads a third of the time.

Points are moved by one statement (``DELETE … RETURNING`` feeding the block upsert), so a point
is in exactly one of the two tables at every commit; late points that land in a compacted day
stay in ``sample_points`` (readers see both) until the next run merges them into their blocks.
With TimescaleDB the compression policy does this instead and this job finds nothing to do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)

_POINTS_DAY = re.compile(r"^sample_points_(\d{8})$")
_LOCK_KEY = 0x666C_636F_6D70  # "flcomp"
# Lower than the default 2 kB so that an hour of 1-per-minute samples is compressed too.
TOAST_TUPLE_TARGET = 128


# False with TimescaleDB: no sample_blocks, and its compression policy does this job.
COMPACTS_SQL = (
    "SELECT to_regclass('sample_blocks') IS NOT NULL AND EXISTS (SELECT 1 FROM "
    "pg_partitioned_table WHERE partrelid = 'sample_points'::regclass) AS x"
)


def blocks_partition_name(day: date) -> str:
    """Return the name of the ``sample_blocks`` partition holding ``day``'s hours."""
    return f"sample_blocks_{day:%Y%m%d}"


_MOVE = """
    WITH moved AS (
        DELETE FROM "{points}" RETURNING series_id, ts, value),
    hours AS (
        SELECT series_id, date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00+00') AS hour,
               ts, value FROM moved),
    fresh AS (
        SELECT series_id, hour,
               array_agg((extract(epoch FROM ts - hour) * 1000000)::bigint ORDER BY ts)
                   AS offsets_us,
               array_agg(value ORDER BY ts) AS vals
        FROM hours GROUP BY series_id, hour),
    written AS (
        INSERT INTO sample_blocks (series_id, hour, offsets_us, vals)
        SELECT * FROM fresh
        ON CONFLICT (series_id, hour) DO UPDATE SET (offsets_us, vals) = (
            SELECT array_agg(z.o ORDER BY z.o), array_agg(z.v ORDER BY z.o)
            FROM unnest(sample_blocks.offsets_us || EXCLUDED.offsets_us,
                        sample_blocks.vals || EXCLUDED.vals) AS z(o, v))
        RETURNING 1)
    SELECT (SELECT count(*) FROM moved) AS samples, (SELECT count(*) FROM written) AS blocks"""


@dataclass
class CompactionResult:
    days: list[date] = field(default_factory=list)
    samples: int = 0


async def compact_closed_days(
    pool: asyncpg.Pool, after_days: int, today: date | None = None
) -> CompactionResult:
    """Compact every day older than ``after_days`` that still has points; return what moved.

    Raises asyncpg errors when the database fails; a day's move is one transaction, so a
    failure leaves that day as it was.
    """
    today = today or datetime.now(UTC).date()
    last = today - timedelta(days=after_days)
    result = CompactionResult()
    async with pool.acquire() as conn:
        native = await conn.fetchval(COMPACTS_SQL)
        if not native:
            return result
        days = []
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'sample_points'::regclass ORDER BY c.relname"
        ):
            match = _POINTS_DAY.match(r["relname"])
            if match:
                day = datetime.strptime(match.group(1), "%Y%m%d").date()
                if day < last:
                    days.append((day, r["relname"]))
        for day, points in days:
            # Cheap test first: most closed days have nothing left to move.
            if not await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{points}")'):
                continue
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                blocks = blocks_partition_name(day)
                if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", blocks):
                    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    end = start + timedelta(days=1)
                    await conn.execute(
                        f'CREATE TABLE "{blocks}" PARTITION OF sample_blocks '
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}') "
                        f"WITH (toast_tuple_target = {TOAST_TUPLE_TARGET})"
                    )
                moved = await conn.fetchrow(_MOVE.format(points=points))
                result.samples += moved["samples"]
            result.days.append(day)
    if result.days:
        log.info("compacted %d closed day(s) into hourly blocks", len(result.days))
    return result
