from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.registry import (
    RegistryError,
    assign_device,
    create_device,
    create_vehicle,
    device_assignments,
)

from .conftest import make_fleet

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_reassigning_a_device_closes_its_current_assignment(pool: asyncpg.Pool):
    fleet = await make_fleet(pool)
    device = fleet.devices[0]
    later = datetime.now(UTC) - timedelta(hours=1)
    async with pool.acquire() as conn:
        second = await create_vehicle(conn, fleet.tenant, "spare truck")
        await assign_device(conn, device, second, later)
        history = await device_assignments(conn, device)
    assert [a.vehicle_id for a in history] == [fleet.vehicles[device], second]
    assert history[0].valid_to == later and history[1].valid_to is None


async def test_a_device_cannot_go_into_another_tenants_vehicle(pool: asyncpg.Pool):
    ours, theirs = await make_fleet(pool), await make_fleet(pool)
    async with pool.acquire() as conn:
        with pytest.raises(RegistryError, match="different tenants"):
            await assign_device(conn, ours.devices[0], theirs.vehicles[theirs.devices[0]])
        assert len(await device_assignments(conn, ours.devices[0])) == 1


async def test_an_assignment_cannot_start_before_the_current_one(pool: asyncpg.Pool):
    fleet = await make_fleet(pool)
    async with pool.acquire() as conn:
        spare = await create_vehicle(conn, fleet.tenant, "spare")
        with pytest.raises(RegistryError, match="current assignment starting after"):
            await assign_device(conn, fleet.devices[0], spare, datetime(2000, 1, 1, tzinfo=UTC))


async def test_registry_refusals_say_what_is_wrong(pool: asyncpg.Pool):
    fleet = await make_fleet(pool)
    with pytest.raises(RegistryError, match="already registered"):
        await create_device(pool, fleet.tenant, fleet.devices[0])
    with pytest.raises(RegistryError, match="does not exist"):
        await create_device(pool, "no-such-tenant", "dev-x")
    with pytest.raises(RegistryError, match="device id"):
        await create_device(pool, fleet.tenant, "bad/id")
    with pytest.raises(RegistryError, match="VIN"):
        await create_vehicle(pool, fleet.tenant, "bad vin", vin="SHORT")
