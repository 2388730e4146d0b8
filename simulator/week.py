"""A time-accelerated simulated fleet: days of driving for many vehicles with drivers assigned,
stored through the ingest's own store (classify + ChunkStore.write), then trips recomputed.

Each vehicle is the simulator's physical model driven by a driver of its own style; trips run
at set hours with 1 Hz samples of speed, rpm, fuel rate and position, sent as one telemetry
batch per minute; device events (cornering, tailgating, seat belt) come as event batches.
Drivers swap vehicles halfway through, so scores follow the time-ranged assignments. Every
vehicle gets a service plan (so maintenance falls due over the week) and the route passes a
speed zone around Amsterdam Centraal, whose enter and exit events are evaluated from the
stored positions and whose limit the speeding rule uses.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg

from fleetlink.cloud.geofences.geometry import parse_shape
from fleetlink.cloud.geofences.monitor import GeofenceMonitor, Positions
from fleetlink.cloud.ingest.inbound import Delivery, Inbound, IngestRules, classify
from fleetlink.cloud.ingest.store import ChunkStore
from fleetlink.cloud.registry import assign_device, create_device, create_vehicle, ensure_tenant
from fleetlink.cloud.trips.recompute import recompute_marked
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Event, EventBatch, Series, TelemetryBatch
from fleetlink.shared.signals import by_name
from fleetlink.shared.topics import Kind, topic
from fleetlink.simulator.driver import Driver
from fleetlink.simulator.vehicle import Vehicle

_STEP_S = 0.5
_SIGNALS = {
    by_name("Vehicle.Speed").id: "speed_kmh",
    by_name("Vehicle.Powertrain.CombustionEngine.Speed").id: "rpm",
    by_name("Vehicle.OBD.FuelRate").id: "fuel_rate_lph",
    by_name("Vehicle.CurrentLocation.Latitude").id: "latitude",
    by_name("Vehicle.CurrentLocation.Longitude").id: "longitude",
}
# Rules the simulated (urban) fleet runs under: its drivers rarely pass 110 km/h, and every
# one of them stops at the simulated lights more firmly than a real calm driver would.
URBAN_RULES = {"detection": {"speed_limit_kmh": 70.0, "harsh_braking_ms2": 5.0}}
# A 50 km/h zone of 400 m around Centraal, a waypoint of the simulated route.
SPEED_ZONE = "Centraal 50 zone"
SPEED_ZONE_CENTRE = (52.37800, 4.90030)
SPEED_ZONE_RADIUS_M = 400.0
SPEED_ZONE_KMH = 50.0
_LATITUDE = by_name("Vehicle.CurrentLocation.Latitude").id
_LONGITUDE = by_name("Vehicle.CurrentLocation.Longitude").id


@dataclass(frozen=True, slots=True)
class WeekPlan:
    vehicles: int = 20
    days: int = 7
    trips_per_day: int = 3
    trip_minutes: float = 20.0
    seed: int = 0
    first_day: date = field(default_factory=lambda: datetime.now(UTC).date() - timedelta(days=8))


@dataclass(slots=True)
class WeekResult:
    tenant: str
    vehicles: list[uuid.UUID]
    drivers: list[uuid.UUID]
    batches: int = 0
    samples: int = 0
    days_recomputed: int = 0
    geofence_events: int = 0


def _style(n: int, seed: int) -> float:
    return round(random.Random(seed * 1000 + n).uniform(0.05, 0.95), 3)


def vehicle_messages(
    device: str, n: int, plan: WeekPlan
) -> Iterator[tuple[Kind, TelemetryBatch | EventBatch]]:
    """Yield the vehicle's telemetry and event batches over the plan, in time order, with
    consecutive seqs from 1."""
    rng = random.Random(plan.seed * 7919 + n)
    vehicle = Vehicle(plan.seed * 1000 + n)
    # The assigned driver drives: driver n until midweek, then driver n - 1 (see _make_fleet).
    before = Driver(_style(n, plan.seed), plan.seed * 1000 + n)
    m = (n - 1) % plan.vehicles
    after = Driver(_style(m, plan.seed), plan.seed * 1000 + m)
    seq = 0
    for d in range(plan.days):
        driver = before if d < plan.days // 2 else after
        style = driver.style
        day = plan.first_day + timedelta(days=d)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for k in range(plan.trips_per_day):
            start = midnight + timedelta(hours=7 + 4 * k, minutes=rng.uniform(0, 90))
            vehicle.set_ignition(True)
            state = vehicle.snapshot()
            columns: dict[int, list[float]] = {sid: [] for sid in _SIGNALS}
            offsets: list[int] = []
            base_ms = int(start.timestamp() * 1000)
            drive_s = plan.trip_minutes * 60 * rng.uniform(0.6, 1.4)
            elapsed = 0.0
            events: list[Event] = []
            while True:
                if elapsed >= drive_s and vehicle.snapshot().ignition_on:
                    vehicle.set_ignition(False)
                pedals = driver.step(_STEP_S, state)
                vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
                state = vehicle.step(_STEP_S)
                elapsed += _STEP_S
                if elapsed % 1.0 == 0:
                    offsets.append(int(elapsed * 1000))
                    for sid, name in _SIGNALS.items():
                        columns[sid].append(float(getattr(state, name)))
                    if state.speed_kmh > 25 and rng.random() < 0.0015 * style:
                        kind = rng.choice(["harsh_cornering", "tailgating", "seatbelt_unfastened"])
                        events.append(
                            Event(
                                id=uuid.UUID(int=rng.getrandbits(128)),
                                time_ms=base_ms + int(elapsed * 1000),
                                type=kind,
                                severity="warning",
                                data={"speed_kmh": round(state.speed_kmh, 1)},
                            )
                        )
                if len(offsets) == 60 or (not state.ignition_on and state.speed_kmh == 0):
                    if offsets:
                        seq += 1
                        first = offsets[0]
                        yield (
                            Kind.TELEMETRY,
                            TelemetryBatch(
                                device_id=device,
                                seq=seq,
                                base_time_ms=base_ms + first,
                                series=[
                                    Series(
                                        signal_id=sid,
                                        offsets_ms=[o - first for o in offsets],
                                        values=values,
                                    )
                                    for sid, values in columns.items()
                                ],
                            ),
                        )
                        offsets = []
                        columns = {sid: [] for sid in _SIGNALS}
                    if not state.ignition_on and state.speed_kmh == 0:
                        break
            if events:
                seq += 1
                yield Kind.EVENTS, EventBatch(device_id=device, seq=seq, events=events)


async def _make_fleet(conn: asyncpg.Connection, tenant: str, plan: WeekPlan) -> WeekResult:
    await ensure_tenant(conn, tenant)
    result = WeekResult(tenant, [], [])
    since = datetime(plan.first_day.year, plan.first_day.month, plan.first_day.day, tzinfo=UTC)
    midweek = since + timedelta(days=plan.days // 2)
    for n in range(plan.vehicles):
        device = f"{tenant}-dev{n:03d}"
        await create_device(conn, tenant, device)
        vehicle = await create_vehicle(conn, tenant, f"van {n:03d}")
        await assign_device(conn, device, vehicle, since - timedelta(days=1))
        driver = uuid.uuid4()
        await conn.execute(
            "INSERT INTO drivers (id, tenant_id, name, employee_number) VALUES ($1, $2, $3, $4)",
            driver,
            tenant,
            f"Driver {n:03d} (style {_style(n, plan.seed):.2f})",
            f"E{n:04d}",
        )
        result.vehicles.append(vehicle)
        result.drivers.append(driver)
    # Driver n drives vehicle n until midweek, then vehicle n+1.
    count = plan.vehicles
    for n, driver in enumerate(result.drivers):
        await conn.execute(
            "INSERT INTO driver_assignments (tenant_id, driver_id, vehicle_id, valid_from, "
            "valid_to) VALUES ($1, $2, $3, $4, $5), ($1, $2, $6, $5, NULL)",
            tenant,
            driver,
            result.vehicles[n],
            since - timedelta(days=1),
            midweek,
            result.vehicles[(n + 1) % count],
        )
    # A service every 1,000 km or every ``plan.days`` days from the first day: overdue by the
    # time the simulated days are stored (they end the day before yesterday).
    await conn.executemany(
        "INSERT INTO maintenance_plans (id, tenant_id, name, vehicle_id, interval_km, "
        "interval_days, start_date) VALUES ($1, $2, 'Service', $3, 1000, $4, $5)",
        [(uuid.uuid4(), tenant, v, plan.days, plan.first_day) for v in result.vehicles],
    )
    shape = parse_shape(
        {"type": "Point", "coordinates": [SPEED_ZONE_CENTRE[1], SPEED_ZONE_CENTRE[0]]},
        SPEED_ZONE_RADIUS_M,
    )
    await conn.execute(
        """INSERT INTO geofences (id, tenant_id, name, geometry, radius_m, speed_limit_kmh,
                                  min_lat, max_lat, min_lon, max_lon)
           VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (tenant_id, name) DO NOTHING""",
        uuid.uuid4(),
        tenant,
        SPEED_ZONE,
        json.dumps(shape.geometry),
        shape.radius_m,
        SPEED_ZONE_KMH,
        shape.bounds.min_lat,
        shape.bounds.max_lat,
        shape.bounds.min_lon,
        shape.bounds.max_lon,
    )
    await conn.execute(
        "INSERT INTO scoring_rules (tenant_id, rules) VALUES ($1, $2::jsonb) "
        "ON CONFLICT (tenant_id) DO UPDATE SET rules = EXCLUDED.rules",
        tenant,
        _urban_rules_json(),
    )
    return result


def _urban_rules_json() -> str:
    from fleetlink.cloud.scoring.rules import default_rules

    rules = default_rules().model_dump()
    rules["detection"].update(URBAN_RULES["detection"])
    return default_rules().model_validate(rules).model_dump_json()


async def store_week(pool: asyncpg.Pool, tenant: str, plan: WeekPlan) -> WeekResult:
    """Create ``tenant``'s fleet, store its simulated days through the ingest's store, and
    recompute every marked day; return what was made."""
    async with pool.acquire() as conn:
        result = await _make_fleet(conn, tenant, plan)
    store = ChunkStore()
    rules = IngestRules()
    monitor = GeofenceMonitor(pool)
    now = datetime.now(UTC)
    for n in range(plan.vehicles):
        device = f"{tenant}-dev{n:03d}"
        vehicle = result.vehicles[n]
        chunk: list[Inbound] = []
        points: list[tuple[datetime, float, float]] = []
        for kind, message in vehicle_messages(device, n, plan):
            chunk.append(
                classify(
                    Delivery(topic(tenant, device, kind), encode(message), 0, 1, now), now, rules
                )
            )
            if isinstance(message, TelemetryBatch):
                points += _positions(message)
            if len(chunk) >= 200:
                result.samples += await _write(pool, store, chunk)
                result.batches += len(chunk)
                chunk = []
        if chunk:
            result.samples += await _write(pool, store, chunk)
            result.batches += len(chunk)
        # The vehicle's positions through the fences, as the ingest hands them over live.
        raised = await monitor.evaluate(Positions(tenant, vehicle, device, points))
        result.geofence_events += len(raised)
    while done := await recompute_marked(pool, limit=500):
        result.days_recomputed += done
    return result


def _positions(batch: TelemetryBatch) -> list[tuple[datetime, float, float]]:
    series = {s.signal_id: s for s in batch.series}
    lat, lon = series[_LATITUDE], series[_LONGITUDE]
    return [
        (datetime.fromtimestamp((batch.base_time_ms + offset) / 1000, UTC), la, lo)
        for offset, la, lo in zip(lat.offsets_ms, lat.values, lon.values, strict=True)
    ]


async def _write(pool: asyncpg.Pool, store: ChunkStore, chunk: list[Inbound]) -> int:
    async with pool.acquire() as conn:
        written = await store.write(conn, chunk)
    if written.refused or written.counters.get("dead_lettered"):
        raise RuntimeError(f"the ingest refused simulated batches: {written.counters}")
    return written.samples


async def summarise_week(tenant: str, plan: WeekPlan) -> list[str]:
    """Migrate the configured database, store the plan's week for ``tenant`` and return a
    summary: what was stored, the trips and the week's leaderboard."""
    from fleetlink.cloud.api.scores import leaderboard
    from fleetlink.cloud.db.migrate import migrate
    from fleetlink.cloud.maintenance.schedule import due_items
    from fleetlink.cloud.settings import CloudSettings

    pool = await asyncpg.create_pool(
        CloudSettings(mode="demo").database_dsn(), min_size=1, max_size=4
    )
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        result = await store_week(pool, tenant, plan)
        async with pool.acquire() as conn:
            totals = await conn.fetchrow(
                "SELECT count(*) AS trips, coalesce(sum(distance_km), 0) AS km FROM trips "
                "WHERE tenant_id = $1",
                tenant,
            )
            last = plan.first_day + timedelta(days=plan.days - 1)
            board = await leaderboard(conn, tenant, "range", plan.first_day, last)
            due = sum(i.state.status != "ok" for i in await due_items(conn, tenant))
    finally:
        await pool.close()
    lines = [
        f"stored {result.batches} batches ({result.samples:,} samples); recomputed "
        f"{result.days_recomputed} vehicle-days: {totals['trips']} trips, {totals['km']:.0f} km",
        f"{result.geofence_events} geofence events ({SPEED_ZONE}, "
        f"{SPEED_ZONE_KMH:g} km/h); maintenance due or overdue: {due} of "
        f"{len(result.vehicles)} vehicles",
        "leaderboard of the whole range (score, band, km):",
    ]
    lines += [
        f"  {e.rank or '-':>3}  {e.name:<28} {e.score if e.score is not None else '-':>6}  "
        f"{e.band or '-':<7} {e.distance_km:8.1f}"
        for e in board.entries
    ]
    return lines
