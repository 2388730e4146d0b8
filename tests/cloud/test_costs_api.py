"""Spend, total cost of ownership and fuel-saving recommendations on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.maintenance.fuel import FUEL_RATE, MAF

from .conftest import Fleet, bearer, ingest_settings, make_fleet, member_token
from .helpers import SPEED
from .test_maintenance_api import insert_samples, vehicles

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)


@pytest.fixture
async def fleet2(pool: asyncpg.Pool) -> Fleet:
    return await make_fleet(pool, devices=2)


@pytest.fixture
async def client(aiohttp_client, migrated_db, mqtt_broker, fleet2: Fleet, pool):
    settings = ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0)
    token = await member_token(pool, fleet2.tenant, "fleet_manager")
    return await aiohttp_client(create_app(settings), headers=bearer(token))


def drive(start: datetime, minutes: int, speed_kmh: float, rate_lph: float) -> list[tuple]:
    """Samples every 10 s: speed and fuel rate held constant."""
    rows = []
    for s in range(0, minutes * 60, 10):
        at = start + timedelta(seconds=s)
        rows += [(SPEED, at, speed_kmh), (FUEL_RATE, at, rate_lph)]
    return rows


async def test_spend_counts_fuel_from_signals_at_the_set_price_and_work_records(
    client, fleet2, pool
):
    a, b = vehicles(fleet2)
    # a: 60 min at 50 km/h burning 6 l/h, then 10 min idling at 0.9 l/h
    await insert_samples(
        pool, fleet2, 0, drive(T0, 60, 50.0, 6.0) + drive(T0 + timedelta(minutes=60), 10, 0, 0.9)
    )
    # b reports only mass air flow: 10 g/s of air for 30 min, petrol
    await insert_samples(
        pool,
        fleet2,
        1,
        [(MAF, T0 + timedelta(seconds=s), 10.0) for s in range(0, 1800, 10)],
    )
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vehicles SET fuel_type = 'petrol' WHERE id = $1", b)
    assert (await client.get("/api/v1/costs/settings")).status == 404
    put = await client.put(
        "/api/v1/costs/settings", json={"fuel_price_per_l": 2.0, "currency": "EUR"}
    )
    assert put.status == 200
    await client.post(
        "/api/v1/maintenance/work-records",
        json={"vehicle_id": str(a), "performed_at": T0.isoformat(), "labour_cost": 150},
    )
    report = await (await client.get("/api/v1/costs/spend")).json()
    items = {i["vehicle_id"]: i for i in report["items"]}
    assert items[str(a)]["fuel_source"] == "fuel_rate"
    assert items[str(a)]["fuel_litres"] == pytest.approx(6.0 + 0.15, abs=0.01)
    assert items[str(a)]["total_cost"] == pytest.approx(2 * 6.15 + 150, abs=0.02)
    # 10 g/s x 1800 s / (14.7 x 745 g/l) = 1.64 l
    assert items[str(b)]["fuel_source"] == "maf"
    assert items[str(b)]["fuel_litres"] == pytest.approx(1.64, abs=0.01)
    assert report["currency"] == "EUR"

    # fill-ups, when recorded, are the fuel spend
    await client.post(
        "/api/v1/costs/fuel-records",
        json={
            "vehicle_id": str(a),
            "filled_at": (T0 + timedelta(hours=3)).isoformat(),
            "litres": 40,
            "cost": 71.6,
        },
    )
    report = await (await client.get(f"/api/v1/costs/spend?vehicle_id={a}")).json()
    [item] = report["items"]
    assert (item["fuel_source"], item["fuel_cost"], item["total_cost"]) == ("records", 71.6, 221.6)


async def test_ownership_adds_acquisition_fuel_and_maintenance_per_km(client, fleet2, pool):
    a = vehicles(fleet2)[0]
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE vehicles SET odometer_km = 10000,
               custom = '{"acquisition_cost": 30000}'::jsonb WHERE id = $1""",
            a,
        )
    await client.post(
        "/api/v1/costs/fuel-records",
        json={"vehicle_id": str(a), "filled_at": T0.isoformat(), "litres": 500, "cost": 900},
    )
    await client.post(
        "/api/v1/maintenance/work-records",
        json={"vehicle_id": str(a), "performed_at": T0.isoformat(), "labour_cost": 100},
    )
    report = await (await client.get(f"/api/v1/costs/ownership?vehicle_id={a}")).json()
    [item] = report["items"]
    assert (item["acquisition_cost"], item["fuel_cost"], item["maintenance_cost"]) == (
        30000,
        900,
        100,
    )
    assert (item["total_cost"], item["cost_per_km"]) == (31000, 3.1)


async def test_recommendations_give_the_litres_idling_and_speed_would_save(client, fleet2, pool):
    await client.put("/api/v1/costs/settings", json={"fuel_price_per_l": 2.0, "currency": "EUR"})
    # 12 minutes idling at 1.2 l/h: 10 minutes beyond the 2-minute grace = 0.2 l;
    # 60 minutes at 125 km/h burning 9 l/h: 9 x 0.5 x (1 - (100/125)^2) = 1.62 l
    rows = drive(T0, 12, 0.0, 1.2) + drive(T0 + timedelta(minutes=20), 60, 125.0, 9.0)
    await insert_samples(pool, fleet2, 0, rows)
    body = await (await client.get("/api/v1/costs/recommendations")).json()
    saved = {i["kind"]: i for i in body["items"]}
    assert saved["speed"]["litres_saved"] == pytest.approx(1.62, abs=0.01)
    assert saved["idling"]["litres_saved"] == pytest.approx(0.2, abs=0.01)
    assert saved["speed"]["cost_saved"] == pytest.approx(3.24, abs=0.02)
    assert [i["kind"] for i in body["items"]] == ["speed", "idling"]
    assert "1 - (100/v)^2" in body["method"]


async def test_a_technician_records_work_but_sees_no_costs(
    client, fleet2, pool, aiohttp_client, migrated_db, mqtt_broker
):
    settings = ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0)
    technician = await aiohttp_client(
        create_app(settings),
        headers=bearer(await member_token(pool, fleet2.tenant, "technician")),
    )
    created = await technician.post(
        "/api/v1/maintenance/work-records",
        json={"vehicle_id": str(vehicles(fleet2)[0]), "performed_at": T0.isoformat()},
    )
    assert created.status == 201
    assert (await technician.get("/api/v1/costs/spend")).status == 403
