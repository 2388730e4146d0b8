import asyncpg
import pytest

from fleetlink.cloud.db.migrate import applied_versions, available_migrations, migrate
from fleetlink.shared.signals import all_signals

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_migrations_are_recorded_once_and_a_rerun_applies_nothing(pool: asyncpg.Pool):
    async with pool.acquire() as conn:
        assert await applied_versions(conn) == [m.version for m in available_migrations()]
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            available_migrations()
        )


async def test_every_table_carries_a_tenant_id(pool: asyncpg.Pool):
    tables = [
        "devices",
        "vehicles",
        "device_assignments",
        "samples",
        "ingested_batches",
        "latest_signals",
        "events",
    ]
    for table in tables:
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = $1 AND column_name = 'tenant_id'",
                table,
            )
            == 1
        ), table


async def test_signal_table_mirrors_the_catalog(pool: asyncpg.Pool):
    rows = await pool.fetch("SELECT id, name, unit FROM signals ORDER BY id")
    assert [(r["id"], r["name"], r["unit"]) for r in rows] == [
        (s.id, s.name, s.unit) for s in all_signals()
    ]


async def test_sample_points_are_partitioned_by_time(pool: asyncpg.Pool):
    strategy = await pool.fetchval(
        "SELECT partstrat::text FROM pg_partitioned_table "
        "WHERE partrelid = 'sample_points'::regclass"
    )
    assert strategy == "r"
