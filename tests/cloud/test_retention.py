"""Retention: whole daily partitions go once no tenant's policy (nor the ingest's window) needs
them; a tenant with a shorter policy loses only its own older samples and rollups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.ingest.partitions import DailyPartitions, partition_name
from fleetlink.cloud.ingest.store import SAMPLE_COLUMNS
from fleetlink.cloud.storage.retention import apply_retention
from tests.conftest import scratch_database

from .conftest import make_fleet

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: retention acts on every tenant and partition it finds."""
    with scratch_database() as url:
        await migrate_url(url)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        yield pool
        await pool.close()


async def _sample(conn: asyncpg.Connection, fleet, ts: datetime) -> None:  # type: ignore[no-untyped-def]
    device = fleet.devices[0]
    await DailyPartitions().ensure(conn, {ts.date()})
    await conn.copy_records_to_table(
        "samples",
        records=[(fleet.tenant, fleet.vehicles[device], device, 13, ts, 50.0)],
        columns=SAMPLE_COLUMNS,
    )
    await conn.execute(
        "INSERT INTO signal_rollups_1h VALUES ($1, $2, 13, $3, 1, 50, 50, 50) "
        "ON CONFLICT DO NOTHING",
        fleet.tenant,
        fleet.vehicles[device],
        ts.replace(minute=0, second=0, microsecond=0),
    )


async def test_old_partitions_are_dropped_and_short_policies_delete_their_own_rows(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    ancient = now - timedelta(days=900)  # beyond every policy and the ingest's window
    short, long = await make_fleet(pool), await make_fleet(pool)
    async with pool.acquire() as conn:
        for fleet in (short, long):
            await _sample(conn, fleet, now - timedelta(days=10))
        await _sample(conn, long, ancient)
        await conn.execute(
            "INSERT INTO retention_policies (tenant_id, raw_days, rollup_1m_days, rollup_1h_days) "
            "VALUES ($1, 5, 5, 5)",
            short.tenant,
        )
    result = await apply_retention(pool, ingest_accept_past_days=400)
    assert partition_name(ancient.date()) in result.partitions_dropped
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass($1)", partition_name(ancient.date())) is None
        counts = {
            fleet.tenant: (
                await conn.fetchval(
                    "SELECT count(*) FROM samples WHERE tenant_id = $1", fleet.tenant
                ),
                await conn.fetchval(
                    "SELECT count(*) FROM signal_rollups_1h WHERE tenant_id = $1", fleet.tenant
                ),
            )
            for fleet in (short, long)
        }
    # The short policy lost its 10-day-old sample and rollup; the other tenant kept its recent
    # sample and both hourly rollups (kept ten years by default), the ancient one included.
    assert counts == {short.tenant: (0, 0), long.tenant: (1, 2)}


async def test_a_day_the_ingest_still_accepts_is_never_dropped(pool: asyncpg.Pool) -> None:
    fleet = await make_fleet(pool)
    old = datetime.now(UTC) - timedelta(days=300)
    async with pool.acquire() as conn:
        await _sample(conn, fleet, old)
    # 500 days after the sample every default policy (400 days) lets it go, but the ingest
    # still accepts 600 days back: the partition must stay for late batches to land in.
    later = (datetime.now(UTC) + timedelta(days=200)).date()
    result = await apply_retention(pool, ingest_accept_past_days=600, today=later)
    assert partition_name(old.date()) not in result.partitions_dropped
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass($1)", partition_name(old.date()))
