"""Compaction of closed days: a day's points become hourly blocks that every reader still sees
sample for sample; late points merge into their blocks on the next run; retention drops the
blocks with the day (docs/decisions.md, D91)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.ingest.partitions import DailyPartitions, partition_name
from fleetlink.cloud.ingest.store import SAMPLE_COLUMNS
from fleetlink.cloud.maintenance.readings import distance_from_speed_km
from fleetlink.cloud.storage.compaction import blocks_partition_name, compact_closed_days
from fleetlink.cloud.storage.retention import apply_retention
from fleetlink.cloud.trips.recompute import RPM, SPEED, load_day
from tests.conftest import scratch_database

from .conftest import make_fleet

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: compaction acts on every partition it finds."""
    with scratch_database() as url:
        await migrate_url(url)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        yield pool
        await pool.close()


async def _read(conn: asyncpg.Connection, vehicle, since: datetime, until: datetime):  # type: ignore[no-untyped-def]
    rows = await conn.fetch(
        "SELECT signal_id, ts, value FROM samples_between($1, $2, $3) ORDER BY signal_id, ts",
        vehicle,
        since,
        until,
    )
    return [tuple(r) for r in rows]


async def test_a_compacted_day_reads_the_same_to_the_microsecond_and_late_points_merge(
    pool: asyncpg.Pool,
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=5)
    fleet = await make_fleet(pool)
    device = fleet.devices[0]
    vehicle = fleet.vehicles[device]
    rows = [
        (
            fleet.tenant,
            vehicle,
            device,
            signal,
            day + timedelta(seconds=7 * n, microseconds=n),
            float(n % 97) + signal,
        )
        for n in range(2000)
        for signal in (SPEED, RPM)
    ]
    async with pool.acquire() as conn:
        await DailyPartitions().ensure(conn, {day.date(), today.date()})
        await conn.copy_records_to_table("samples", records=rows, columns=SAMPLE_COLUMNS)
        # Today is not closed: it stays as points.
        await conn.copy_records_to_table(
            "samples",
            records=[(fleet.tenant, vehicle, device, RPM, today, 1.0)],
            columns=SAMPLE_COLUMNS,
        )
        window = (day - timedelta(minutes=30), day + timedelta(days=1))
        before = await _read(conn, vehicle, *window)
        km_before = await distance_from_speed_km(conn, vehicle, *window)
        trips_before = await load_day(conn, fleet.tenant, vehicle, day.date())

    result = await compact_closed_days(pool, after_days=2)
    assert result.days == [day.date()] and result.samples == len(rows)

    async with pool.acquire() as conn:
        assert await conn.fetchval(f'SELECT count(*) FROM "{partition_name(day.date())}"') == 0
        assert await conn.fetchval(f'SELECT count(*) FROM "{partition_name(today.date())}"') == 1
        # 2000 samples 7 s apart: 4 hours per signal.
        assert (
            await conn.fetchval(f'SELECT count(*) FROM "{blocks_partition_name(day.date())}"') == 8
        )
        assert await _read(conn, vehicle, *window) == before
        # A window that starts inside an hour reads only its part of the block.
        inner = (day + timedelta(minutes=90), day + timedelta(minutes=100))
        assert await _read(conn, vehicle, *inner) == [
            r for r in before if inner[0] <= r[1] < inner[1]
        ]
        assert await distance_from_speed_km(conn, vehicle, *window) == pytest.approx(km_before)
        assert await load_day(conn, fleet.tenant, vehicle, day.date()) == trips_before
        assert (
            await conn.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device)
            == len(rows) + 1
        )

        late = (fleet.tenant, vehicle, device, RPM, day + timedelta(seconds=3), -5.0)
        await conn.copy_records_to_table("samples", records=[late], columns=SAMPLE_COLUMNS)
        assert (RPM, late[4], -5.0) in await _read(conn, vehicle, *window)

    again = await compact_closed_days(pool, after_days=2)
    assert again.days == [day.date()] and again.samples == 1
    async with pool.acquire() as conn:
        after = await _read(conn, vehicle, *window)
        assert after == sorted([*before, (RPM, late[4], -5.0)])
        offsets = await conn.fetchval(
            "SELECT offsets_us FROM sample_blocks b JOIN sample_series s ON s.id = b.series_id "
            "WHERE s.signal_id = $2 AND b.hour = $1",
            day,
            RPM,
        )
        assert offsets == sorted(offsets)

    # Retention with a 3 day policy drops the day's points and blocks partitions together.
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO retention_policies VALUES ($1, 3, 3, 3)", fleet.tenant)
    dropped = await apply_retention(pool, ingest_accept_past_days=1)
    assert {partition_name(day.date()), blocks_partition_name(day.date())} <= set(
        dropped.partitions_dropped
    )
