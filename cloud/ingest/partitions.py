"""Daily partitions of ``sample_points``, made the first time a day is written, then cached."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import asyncpg

_LOCK_KEY = 0x666C_7061_7274  # "flpart"
# False when sample_points is a TimescaleDB hypertable, which makes its own chunks.
NATIVE_PARTITIONS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
    "WHERE partrelid = 'sample_points'::regclass) AS x"
)


def partition_name(day: date) -> str:
    """Return the name of the partition holding ``day``'s samples, e.g.
    ``sample_points_20250131``."""
    return f"sample_points_{day:%Y%m%d}"


class DailyPartitions:
    """Knows which daily partitions exist; ``ensure`` creates the missing ones."""

    def __init__(self) -> None:
        self._known: set[date] = set()
        # None until asked; False when sample_points is a hypertable that makes its own chunks.
        self._native: bool | None = None

    async def ensure(self, conn: asyncpg.Connection, days: Iterable[date]) -> list[str]:
        """Create the partitions for the UTC ``days`` that do not exist yet.

        Returns the names created by this call (none when TimescaleDB makes the chunks).
        Concurrent callers are serialised by an advisory transaction lock, so two workers never
        race on the same CREATE.
        """
        missing = set(days) - self._known
        if not missing:
            return []
        if self._native is None:
            self._native = await conn.fetchval(NATIVE_PARTITIONS_SQL)
        if not self._native:
            self._known |= missing
            return []
        created: list[str] = []
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            for day in sorted(missing):
                name = partition_name(day)
                exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
                if not exists:
                    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    end = start + timedelta(days=1)
                    await conn.execute(
                        f"CREATE TABLE {name} PARTITION OF sample_points "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
                    created.append(name)
        self._known |= missing
        return created
