"""Series ids: the int that stands for (tenant, vehicle, device, signal) in ``sample_points``
(docs/decisions.md, D90). Known ids are cached per worker; new series are created in the
chunk's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import asyncpg

SeriesKey = tuple[str, uuid.UUID | None, str, int]
_NONE: Mapping[int, int] = {}

# One statement that always goes through the unique index: ON CONFLICT finds an existing
# series by the constraint (a join on ``vehicle_id IS NOT DISTINCT FROM`` cannot hash and,
# with a young table's statistics, became a nested loop over every series: 15 s per chunk at
# 100,000 series). The no-op update returns the existing row; ``xmax = 0`` marks a row this
# statement inserted. Keys arrive sorted, so concurrent writers lock them in the same order.
_RESOLVE = """
    INSERT INTO sample_series (tenant_id, vehicle_id, device_id, signal_id)
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::smallint[])
    ON CONFLICT (tenant_id, vehicle_id, device_id, signal_id)
        DO UPDATE SET signal_id = EXCLUDED.signal_id
    RETURNING (xmax = 0) AS new, id, tenant_id, vehicle_id, device_id, signal_id"""


class SeriesIdError(RuntimeError):
    """Raised when a series id cannot be found or created; the chunk is retried whole."""


class SeriesIds:
    """Maps series keys to ids. Only ids seen committed are cached: an id created in a
    transaction that rolls back must not be reused.

    The cache must hold the whole fleet's series: every worker sees every device (a shared
    subscription deals messages round robin), and a cache smaller than the fleet is emptied
    again and again, so that every chunk looks its series up (at 10,000 vehicles of 20
    signals the old bound of 200,000 was reached and the ingest fell behind: D100). Ids are
    kept per (tenant, vehicle, device), about 80 bytes a series: the default bound of 2.5
    million series (100,000 vehicles of 25 signals) is about 200 MB. Past it the cache
    starts again.
    """

    def __init__(self, max_cached: int = 2_500_000) -> None:
        self._known: dict[tuple[str, uuid.UUID | None, str], dict[int, int]] = {}
        self._cached = 0
        self.max_cached = max_cached

    @property
    def cached(self) -> int:
        """How many series ids the cache holds."""
        return self._cached

    def _remember(self, key: SeriesKey, series_id: int) -> None:
        if self._cached >= self.max_cached:
            self._known.clear()
            self._cached = 0
        ids = self._known.setdefault(key[:3], {})
        if key[3] not in ids:
            self._cached += 1
        ids[key[3]] = series_id

    def known(self, prefix: tuple[str, uuid.UUID | None, str]) -> Mapping[int, int]:
        """Return the cached ids of one (tenant, vehicle, device)'s series by signal id
        (read-only; empty when none is cached)."""
        return self._known.get(prefix, _NONE)

    def remember_committed(self, created: dict[SeriesKey, int]) -> None:
        """Cache the ids ``resolve`` created, once their transaction has committed."""
        for key, series_id in created.items():
            self._remember(key, series_id)

    async def resolve(
        self,
        conn: asyncpg.Connection,
        keys: Iterable[SeriesKey],
        created: dict[SeriesKey, int] | None = None,
    ) -> dict[SeriesKey, int]:
        """Return the id of every key, creating the missing series in the caller's transaction
        (and adding those to ``created``: the caller passes them to ``remember_committed``
        after COMMIT, so a fleet's series are looked up once, not twice).

        Raises SeriesIdError if a series stays missing (it cannot: a concurrent creator either
        committed, and the next look sees it, or rolled back, and ours inserts it).
        """
        wanted = set(keys)
        found: dict[SeriesKey, int] = {}
        known = self._known
        for key in wanted:
            ids = known.get(key[:3])
            if ids is not None and key[3] in ids:
                found[key] = ids[key[3]]
        created_here: set[SeriesKey] = set()
        for _ in range(3):
            missing = sorted(wanted - found.keys(), key=lambda k: (k[0], str(k[1]), k[2], k[3]))
            if not missing:
                return found
            for r in await conn.fetch(
                _RESOLVE,
                [k[0] for k in missing],
                [k[1] for k in missing],
                [k[2] for k in missing],
                [k[3] for k in missing],
            ):
                key = (r["tenant_id"], r["vehicle_id"], r["device_id"], r["signal_id"])
                found[key] = r["id"]
                if r["new"]:
                    created_here.add(key)
                    if created is not None:
                        created[key] = r["id"]
                elif key not in created_here:
                    self._remember(key, r["id"])
        raise SeriesIdError(f"no series id for {sorted(wanted - found.keys(), key=str)[:3]}")


SampleRow = tuple[str, uuid.UUID | None, str, int, datetime, float]
POINT_COLUMNS = ("series_id", "ts", "value")


async def point_records(
    conn: asyncpg.Connection, rows: Sequence[SampleRow], series: SeriesIds | None = None
) -> list[tuple[int, datetime, float]]:
    """Return ``rows`` (the ``samples`` view's columns) as ``sample_points`` records, creating
    the series they need. Raises SeriesIdError as ``SeriesIds.resolve`` does."""
    ids = await (series or SeriesIds()).resolve(conn, {(r[0], r[1], r[2], r[3]) for r in rows})
    return [(ids[(r[0], r[1], r[2], r[3])], r[4], r[5]) for r in rows]


async def copy_samples(
    conn: asyncpg.Connection, rows: Sequence[SampleRow], series: SeriesIds | None = None
) -> int:
    """COPY ``rows`` into ``sample_points`` (far faster than inserting into the ``samples``
    view, whose trigger writes one row at a time); return how many were written. The days'
    partitions must exist (cloud/ingest/partitions.py)."""
    records = await point_records(conn, rows, series)
    await conn.copy_records_to_table("sample_points", records=records, columns=POINT_COLUMNS)
    return len(records)
