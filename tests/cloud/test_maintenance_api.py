"""Maintenance plans, the due list, work records, DTC history, risk and the notification
outbox, through the API on the real database."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.ingest.partitions import DailyPartitions
from fleetlink.cloud.ingest.store import SAMPLE_COLUMNS
from fleetlink.cloud.maintenance.notify import MAINTENANCE_SCHEDULED, record_due_states
from fleetlink.cloud.maintenance.readings import ODOMETER
from fleetlink.cloud.maintenance.vehicle_days import BATTERY, COOLANT

from .conftest import Fleet, bearer, ingest_settings, make_fleet, member_token
from .helpers import SPEED

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def fleet3(pool: asyncpg.Pool) -> Fleet:
    return await make_fleet(pool, devices=3)


@pytest.fixture
async def client(aiohttp_client, migrated_db, mqtt_broker, fleet3: Fleet, pool):
    settings = ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0)
    token = await member_token(pool, fleet3.tenant, "fleet_manager")
    return await aiohttp_client(create_app(settings), headers=bearer(token))


def vehicles(fleet: Fleet) -> list[uuid.UUID]:
    return [fleet.vehicles[d] for d in fleet.devices]


async def insert_samples(pool: asyncpg.Pool, fleet: Fleet, n: int, rows: list[tuple]) -> None:
    device = fleet.devices[n]
    records = [(fleet.tenant, fleet.vehicles[device], device, *r) for r in rows]
    async with pool.acquire() as conn:
        await DailyPartitions().ensure(conn, {r[4].date() for r in records})
        await conn.copy_records_to_table("samples", records=records, columns=SAMPLE_COLUMNS)


async def test_due_list_is_decided_by_whichever_interval_runs_out_first(client, fleet3, pool):
    a, b, c = vehicles(fleet3)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vehicles SET odometer_km = 14000 WHERE id = $1", a)
        await conn.execute("UPDATE vehicles SET odometer_km = 9000 WHERE id = $1", b)
        # b reports its odometer: the signal, larger than the profile, wins
        await conn.execute(
            "INSERT INTO latest_signals VALUES ($1, $2, $3, now(), 16500)",
            fleet3.tenant,
            b,
            ODOMETER,
        )
        await conn.execute("UPDATE vehicles SET odometer_km = 1000 WHERE id = $1", c)
    created = await client.post(
        "/api/v1/maintenance/plans",
        json={
            "name": "Oil change",
            "interval_km": 15000,
            "interval_hours": 250,
            "interval_days": 365,
        },
    )
    assert created.status == 201, await created.text()
    plan = await created.json()

    due = await (await client.get("/api/v1/maintenance/due")).json()
    by_vehicle = {i["vehicle_id"]: i for i in due["items"]}
    assert set(by_vehicle) == {str(a), str(b)}
    assert by_vehicle[str(b)]["status"] == "overdue" and by_vehicle[str(b)]["due_by"] == "km"
    assert by_vehicle[str(a)]["status"] == "due" and by_vehicle[str(a)]["remaining_km"] == 1000
    assert [i["vehicle_id"] for i in due["items"]] == [str(b), str(a)]  # most used first

    # servicing b restarts its intervals from the work record
    record = await client.post(
        "/api/v1/maintenance/work-records",
        json={
            "vehicle_id": str(b),
            "plan_id": plan["id"],
            "performed_at": datetime.now(UTC).isoformat(),
            "odometer_km": 16400,
            "description": "oil and filter",
            "labour_cost": 80,
            "parts": [
                {"name": "oil 5W-30", "quantity": 4.5, "unit_cost": 9.5},
                {"name": "oil filter", "part_number": "OC 90", "unit_cost": 12},
            ],
        },
    )
    assert record.status == 201, await record.text()
    body = await record.json()
    assert (body["parts_cost"], body["total_cost"]) == (54.75, 134.75)
    due = await (await client.get("/api/v1/maintenance/due?status=all")).json()
    assert {i["vehicle_id"]: i["status"] for i in due["items"]}[str(b)] == "ok"

    exported = await client.get("/api/v1/maintenance/due.csv")
    assert exported.status == 200 and exported.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await exported.text())))
    assert [(r["vehicle_id"], r["status"]) for r in rows] == [(str(a), "due")]


async def test_a_vehicle_without_odometer_counts_distance_from_speed(client, fleet3, pool):
    v = vehicles(fleet3)[0]
    t0 = datetime.now(UTC) - timedelta(hours=2)
    # 60 km/h for an hour at 1 Hz, then a gap (not bridged), then 10 more minutes
    rows = [(SPEED, t0 + timedelta(seconds=s), 60.0) for s in range(3601)]
    rows += [(SPEED, t0 + timedelta(seconds=5000 + s), 60.0) for s in range(601)]
    await insert_samples(pool, fleet3, 0, rows)
    await client.post(
        "/api/v1/maintenance/plans",
        json={
            "name": "Tyres",
            "vehicle_id": str(v),
            "interval_km": 100,
            "start_date": (t0 - timedelta(days=1)).date().isoformat(),
        },
    )
    due = await (await client.get(f"/api/v1/maintenance/due?status=all&vehicle_id={v}")).json()
    [item] = due["items"]
    assert item["distance_source"] == "speed"
    assert item["remaining_km"] == pytest.approx(100 - 70, abs=0.01)


async def test_due_plans_queue_one_notification_each_until_serviced(client, fleet3, pool):
    a = vehicles(fleet3)[0]
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vehicles SET odometer_km = 20000 WHERE id = $1", a)
    plan = await (
        await client.post(
            "/api/v1/maintenance/plans",
            json={"name": "Brakes", "vehicle_id": str(a), "interval_km": 15000},
        )
    ).json()

    hook = {"url": "http://127.0.0.1:9/hook", "event_types": [MAINTENANCE_SCHEDULED]}
    assert (await client.post("/api/v1/webhooks", json=hook)).status == 201

    async def scan() -> list[asyncpg.Record]:
        async with pool.acquire() as conn, conn.transaction():
            await record_due_states(conn, fleet3.tenant)
            return await conn.fetch(
                "SELECT event_type, payload FROM webhook_deliveries WHERE tenant_id = $1",
                fleet3.tenant,
            )

    first = await scan()
    assert [n["event_type"] for n in first] == [MAINTENANCE_SCHEDULED]
    data = json.loads(first[0]["payload"])["data"]
    assert (data["vehicle_id"], data["status"]) == (str(a), "overdue")
    assert len(await scan()) == 1  # still overdue: nothing new
    await client.post(
        "/api/v1/maintenance/work-records",
        json={
            "vehicle_id": str(a),
            "plan_id": plan["id"],
            "odometer_km": 20000,
            "performed_at": datetime.now(UTC).isoformat(),
        },
    )
    assert len(await scan()) == 1  # now ok
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vehicles SET odometer_km = 35500 WHERE id = $1", a)
    assert len(await scan()) == 2  # due again: a second notification


async def test_work_records_are_edited_with_if_match_and_hidden_from_other_tenants(
    client, fleet3, pool, aiohttp_client, migrated_db, mqtt_broker
):
    a = vehicles(fleet3)[0]
    created = await client.post(
        "/api/v1/maintenance/work-records",
        json={
            "vehicle_id": str(a),
            "performed_at": "2026-05-01T10:00:00+00:00",
            "labour_cost": 100,
        },
    )
    url = f"/api/v1/maintenance/work-records/{(await created.json())['id']}"
    assert (await client.patch(url, json={"labour_cost": 50})).status == 428
    patched = await client.patch(
        url,
        json={"parts": [{"name": "wiper", "quantity": 2, "unit_cost": 7.25}]},
        headers={"If-Match": created.headers["ETag"]},
    )
    assert patched.status == 200
    assert (await patched.json())["total_cost"] == 114.5

    other = await make_fleet(pool)
    settings = ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0)
    stranger = await aiohttp_client(
        create_app(settings), headers=bearer(await member_token(pool, other.tenant, "owner"))
    )
    assert (await stranger.get(url)).status == 404
    listed = await (await stranger.get("/api/v1/maintenance/work-records")).json()
    assert listed["items"] == []
    foreign = await stranger.post(
        "/api/v1/maintenance/work-records",
        json={"vehicle_id": str(a), "performed_at": "2026-05-01T10:00:00+00:00"},
    )
    assert foreign.status == 422

    viewer = await aiohttp_client(
        create_app(settings),
        headers=bearer(await member_token(pool, fleet3.tenant, "viewer", scopes=("read",))),
    )
    assert (await viewer.get(url)).status == 200
    assert (await viewer.delete(url)).status == 403


async def test_dtc_history_lists_codes_set_and_cleared_newest_first(client, fleet3, pool):
    a = vehicles(fleet3)[0]
    t0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
    async with pool.acquire() as conn:
        for minutes, kind, code in (
            (0, "dtc_set", "P0301"),
            (5, "dtc_set", "P0217"),
            (60, "dtc_cleared", "P0301"),
            (61, "harsh_braking", None),
        ):
            await conn.execute(
                "INSERT INTO events VALUES ($1, $2, $3, $4, $5, $6, 'warning', $7::jsonb)",
                uuid.uuid4(),
                fleet3.tenant,
                fleet3.devices[0],
                a,
                t0 + timedelta(minutes=minutes),
                kind,
                json.dumps({"code": code, "description": "Cylinder 1 Misfire Detected"}),
            )
    first = await (await client.get(f"/api/v1/vehicles/{a}/dtcs?limit=2")).json()
    assert [(i["action"], i["code"]) for i in first["items"]] == [
        ("cleared", "P0301"),
        ("set", "P0217"),
    ]
    rest = await (
        await client.get(f"/api/v1/vehicles/{a}/dtcs?limit=2&cursor={first['next_cursor']}")
    ).json()
    assert [(i["action"], i["code"]) for i in rest["items"]] == [("set", "P0301")]
    assert (await client.get(f"/api/v1/vehicles/{uuid.uuid4()}/dtcs")).status == 404


async def test_a_failing_battery_and_overheating_engine_raise_the_risk(client, fleet3, pool):
    sick, healthy, _ = vehicles(fleet3)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sick_rows, healthy_rows = [], []
    for day in range(1, 29):
        at = today - timedelta(days=day, hours=-12)
        sick_rows += [(BATTERY, at, 11.9 + 0.02 * day), (COOLANT, at, 112.0 - 0.5 * day)]
        healthy_rows += [(BATTERY, at, 12.6), (COOLANT, at, 92.0)]
    await insert_samples(pool, fleet3, 0, sick_rows)
    await insert_samples(pool, fleet3, 1, healthy_rows)
    sick_risk = await (await client.get(f"/api/v1/vehicles/{sick}/risk")).json()
    healthy_risk = await (await client.get(f"/api/v1/vehicles/{healthy}/risk")).json()
    assert sick_risk["probability_30d"] > 0.5 > 0.2 > healthy_risk["probability_30d"]
    p = [sick_risk[f"probability_{h}d"] for h in (7, 30, 90)]
    assert p == sorted(p)
    top = {f["feature"] for f in sick_risk["factors"][:3]}
    assert "battery_deficit_v" in top or "battery_decline_v_30d" in top
    fleet_risk = await (await client.get("/api/v1/maintenance/risk")).json()
    assert fleet_risk["items"][0]["vehicle_id"] == str(sick)
