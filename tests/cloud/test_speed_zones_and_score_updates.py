"""The recompute of a day judges speeding against the tenant's speed zones, and notifies a
driver.behavior_score_updated webhook once per driver whose score of the day changed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from fleetlink.cloud.geofences.geometry import parse_shape
from fleetlink.cloud.ingest.partitions import DailyPartitions
from fleetlink.cloud.trips.dirty import mark_dirty
from fleetlink.cloud.trips.recompute import LATITUDE, LONGITUDE, SPEED, recompute_marked
from fleetlink.cloud.trips.segment import DaySignals, Detection, compute_day

from .conftest import make_fleet

DAY = date(2026, 3, 3)
ZONE = (52.3791, 4.9003)  # latitude, longitude of the zone's centre
OUTSIDE = (52.40, 4.95)


def test_an_episode_runs_while_the_last_position_is_in_the_zone() -> None:
    # 60 km/h for 300 s; positions every 10 s, inside the zone (latitude 1) from 100 s to 200 s.
    t0 = 1_000_000.0
    speed = [(t0 + i, 60.0) for i in range(300)]
    lat = [(t0 + i, 1.0 if 100 <= i < 200 else 0.0) for i in range(0, 300, 10)]
    lon = [(t, 0.0) for t, _ in lat]
    day = DaySignals(speed=speed, latitude=lat, longitude=lon)

    def zone(la: float, lo: float) -> float | None:
        return 50.0 if la == 1.0 else None

    [trip] = compute_day(uuid.UUID(int=7), day, Detection(speeding_min_s=10), zone)
    [episode] = [e for e in trip.events if e.type == "speeding"]
    assert (episode.ts, episode.duration_s, episode.magnitude) == (t0 + 100, 100, 10.0)
    assert episode.data == {"limit_kmh": 50.0, "max_kmh": 60.0}
    # Without zones the rules' limit (110 km/h) applies: no speeding.
    [plain] = compute_day(uuid.UUID(int=7), day, Detection(speeding_min_s=10))
    assert not [e for e in plain.events if e.type == "speeding"]


async def _drive(
    conn: asyncpg.Connection, tenant: str, device: str, vehicle: uuid.UUID, where: tuple
) -> None:
    """Ten minutes at 60 km/h from 08:00, standing at ``where`` (1 Hz samples)."""
    start = datetime(DAY.year, DAY.month, DAY.day, 8, tzinfo=UTC)
    rows = []
    for i in range(600):
        ts = start + timedelta(seconds=i)
        for signal, value in ((SPEED, 60.0), (LATITUDE, where[0]), (LONGITUDE, where[1])):
            rows.append((tenant, vehicle, device, signal, ts, value))
    await conn.copy_records_to_table(
        "samples",
        records=rows,
        columns=("tenant_id", "vehicle_id", "device_id", "signal_id", "ts", "value"),
    )


async def _recompute(pool: asyncpg.Pool, tenant: str, vehicles: list[uuid.UUID]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await mark_dirty(conn, [(tenant, v, DAY) for v in vehicles])
    await recompute_marked(pool, limit=100)


@pytest.mark.asyncio(loop_scope="session")
async def test_speeding_uses_the_zone_limit_inside_and_a_score_change_is_notified_once(
    pool: asyncpg.Pool,
) -> None:
    fleet = await make_fleet(pool, devices=2)
    tenant = fleet.tenant
    inside, outside = (fleet.vehicles[d] for d in fleet.devices)
    driver, webhook = uuid.uuid4(), uuid.uuid4()
    shape = parse_shape({"type": "Point", "coordinates": [ZONE[1], ZONE[0]]}, 500.0)
    async with pool.acquire() as conn:
        await DailyPartitions().ensure(conn, [DAY])
        await conn.execute(
            """INSERT INTO geofences (id, tenant_id, name, geometry, radius_m, speed_limit_kmh,
                                      min_lat, max_lat, min_lon, max_lon)
               VALUES ($1, $2, 'school zone', $3::text::jsonb, $4, 50, $5, $6, $7, $8)""",
            uuid.uuid4(),
            tenant,
            json.dumps(shape.geometry),
            shape.radius_m,
            shape.bounds.min_lat,
            shape.bounds.max_lat,
            shape.bounds.min_lon,
            shape.bounds.max_lon,
        )
        await conn.execute(
            "INSERT INTO drivers (id, tenant_id, name) VALUES ($1, $2, 'Dee')", driver, tenant
        )
        await conn.execute(
            "INSERT INTO driver_assignments (tenant_id, driver_id, vehicle_id, valid_from) "
            "VALUES ($1, $2, $3, $4)",
            tenant,
            driver,
            inside,
            datetime(2026, 3, 1, tzinfo=UTC),
        )
        await conn.execute(
            "INSERT INTO webhooks (id, tenant_id, url, event_types, secret_enc) "
            "VALUES ($1, $2, 'https://hooks.example/score', $3, 'sealed')",
            webhook,
            tenant,
            ["driver.behavior_score_updated"],
        )
        await _drive(conn, tenant, fleet.devices[0], inside, ZONE)
        await _drive(conn, tenant, fleet.devices[1], outside, OUTSIDE)

    await _recompute(pool, tenant, [inside, outside])
    async with pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT vehicle_id, magnitude, data FROM driving_events "
            "WHERE tenant_id = $1 AND type = 'speeding'",
            tenant,
        )
        assert [(e["vehicle_id"], e["magnitude"]) for e in events] == [(inside, 10.0)]
        assert json.loads(events[0]["data"])["limit_kmh"] == 50
        deliveries = await conn.fetch(
            "SELECT event_type, payload FROM webhook_deliveries WHERE webhook_id = $1", webhook
        )
        assert [d["event_type"] for d in deliveries] == ["driver.behavior_score_updated"]
        data = json.loads(deliveries[0]["payload"])["data"]
        assert data["driver_id"] == str(driver) and data["day"] == DAY.isoformat()
        assert data["previous_score"] is None and data["score"] < 100

    # The same data recomputed again: the score is unchanged, so nothing more is queued.
    await _recompute(pool, tenant, [inside, outside])
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", webhook
            )
            == 1
        )
