"""Samples stored as (series_id, ts, value) under a series table: migration 0017 moves the
rows of the old layout, readers keep reading the ``samples`` view, and a tenant's reader sees
only its own series (docs/decisions.md, D90)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.db.backend import storage_backend
from fleetlink.cloud.db.migrate import available_migrations, migrate
from fleetlink.cloud.ingest.partitions import NATIVE_PARTITIONS_SQL
from fleetlink.cloud.ingest.series import SeriesIds
from fleetlink.cloud.storage.compaction import COMPACTS_SQL
from fleetlink.cloud.storage.rollups import ROLLUPS_ARE_VIEWS_SQL
from fleetlink.cloud.storage.timescale import is_hypertable
from tests.conftest import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC)


async def test_migration_moves_every_sample_of_the_old_layout_with_its_keys():
    with scratch_database() as url:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute(
                    "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                for m in available_migrations():
                    if m.version < 16:
                        await conn.execute(m.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            m.version,
                            m.name,
                        )
            vehicle = uuid.uuid4()
            for day in (T0.date(), T0.date() + timedelta(days=1)):
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                await conn.execute(
                    f"CREATE TABLE samples_{day:%Y%m%d} PARTITION OF samples FOR VALUES "
                    f"FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
                )
            old = [
                ("t1", vehicle, "d1", 12, T0 + timedelta(seconds=n), float(n)) for n in range(5)
            ] + [("t1", None, "d2", 12, T0, 7.5), ("t2", None, "d3", 13, T0, -1.0)]
            await conn.copy_records_to_table(
                "samples",
                records=old,
                columns=("tenant_id", "vehicle_id", "device_id", "signal_id", "ts", "value"),
            )
            applied = await migrate(conn)
            assert [a[:4] for a in applied][:2] == ["0016", "0017"]
            moved = await conn.fetch(
                "SELECT tenant_id, vehicle_id, device_id, signal_id, ts, value FROM samples"
            )
            assert sorted((tuple(r) for r in moved), key=str) == sorted(old, key=str)
            assert await conn.fetchval("SELECT count(*) FROM sample_series") == 3
            parts = {
                r["relname"]
                for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'sample_points'::regclass"
                )
            }
            assert parts == {"sample_points_20260301", "sample_points_20260302"}
            assert await conn.fetchval("SELECT to_regclass('samples_0002')") is None
        finally:
            await conn.close()


async def test_series_ids_are_created_once_and_reused_after_commit(pool: asyncpg.Pool):
    keys = {("series-tenant", uuid.uuid4(), "series-device", s) for s in (1, 2, 3)}
    first, second = SeriesIds(), SeriesIds()
    async with pool.acquire() as conn:
        async with conn.transaction():
            ids = await first.resolve(conn, keys)
        again = await second.resolve(conn, keys)
    assert ids == again and len(set(ids.values())) == 3


async def test_a_series_created_in_a_rolled_back_transaction_is_not_reused(pool: asyncpg.Pool):
    key = ("series-tenant", uuid.uuid4(), "series-device", 9)
    series = SeriesIds()
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                lost = (await series.resolve(conn, [key]))[key]
                raise RuntimeError("the chunk failed")
        kept = (await series.resolve(conn, [key]))[key]
        assert kept != lost
        assert (
            await conn.fetchval(
                "SELECT id FROM sample_series WHERE device_id = $1 AND vehicle_id = $2",
                key[2],
                key[1],
            )
            == kept
        )


async def test_the_api_role_reads_only_its_tenants_samples_through_the_view(
    migrated_db: str, pool: asyncpg.Pool
):
    day = datetime(2026, 3, 5, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS sample_points_20260305 PARTITION OF sample_points "
            "FOR VALUES FROM ('2026-03-05 00:00+00') TO ('2026-03-06 00:00+00')"
        )
        for tenant in ("view-mine", "view-theirs"):
            await conn.execute(
                "INSERT INTO samples VALUES ($1, NULL, $2, 12, $3, 1.0)", tenant, tenant, day
            )
    api = await asyncpg.connect(migrated_db, server_settings={"role": "fleetlink_api"})
    try:
        async with api.transaction():
            await api.execute("SELECT set_config('fleetlink.tenant', 'view-mine', true)")
            seen = await api.fetch("SELECT DISTINCT tenant_id FROM samples WHERE ts = $1", day)
            assert [r["tenant_id"] for r in seen] == ["view-mine"]
    finally:
        await api.close()


async def test_the_series_cache_stays_within_its_bound_and_still_answers(pool: asyncpg.Pool):
    series = SeriesIds(max_cached=4)
    keys = [("series-tenant", None, f"bounded-{n}", 12) for n in range(10)]
    async with pool.acquire() as conn:
        first = await series.resolve(conn, keys)
        again = await series.resolve(conn, keys)
    assert first == again and 0 < series.cached <= 4


async def test_plain_postgresql_is_told_apart_from_timescaledb(pool: asyncpg.Pool):
    async with pool.acquire() as conn:
        assert await storage_backend(conn) == "native"
        assert await conn.fetchval(NATIVE_PARTITIONS_SQL) is True
        assert await conn.fetchval(COMPACTS_SQL) is True
        assert await conn.fetchval(ROLLUPS_ARE_VIEWS_SQL, "signal_rollups_1m") is False
        assert await is_hypertable(conn, "sample_points") is False
