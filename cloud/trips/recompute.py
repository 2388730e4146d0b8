"""Recompute a (vehicle, day): read its samples and events, compute its trips and driving
events, and replace what was stored for it, together with the day's signal rollups."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import date

import asyncpg

from fleetlink.cloud.geofences.fences import load_fences
from fleetlink.cloud.scoring.rules import ScoringRules, rules_of
from fleetlink.cloud.scoring.score_updates import day_scores, notify_changed
from fleetlink.cloud.storage.rollups import day_bounds, rebuild_day
from fleetlink.cloud.trips.dirty import DirtyDay, claim
from fleetlink.cloud.trips.segment import (
    SCORED_DEVICE_TYPES,
    DaySignals,
    DeviceEvent,
    Trip,
    as_datetime,
    compute_day,
)
from fleetlink.shared.signals import by_name

SPEED = by_name("Vehicle.Speed").id
RPM = by_name("Vehicle.Powertrain.CombustionEngine.Speed").id
FUEL_RATE = by_name("Vehicle.OBD.FuelRate").id
MAF = by_name("Vehicle.Powertrain.CombustionEngine.MAF").id
LATITUDE = by_name("Vehicle.CurrentLocation.Latitude").id
LONGITUDE = by_name("Vehicle.CurrentLocation.Longitude").id
log = logging.getLogger(__name__)
_FIELDS = {
    SPEED: "speed",
    RPM: "rpm",
    FUEL_RATE: "fuel_rate_lph",
    MAF: "maf_gs",
    LATITUDE: "latitude",
    LONGITUDE: "longitude",
}


DAY_SAMPLES_SQL = """
    SELECT signal_id, extract(epoch FROM ts)::float8 AS t, value
    FROM samples_between($2, $3, $4)
    WHERE tenant_id = $1 AND signal_id = ANY($5::smallint[])
      AND value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"""


async def load_day(
    conn: asyncpg.Connection, tenant: str, vehicle: uuid.UUID, day: date
) -> DaySignals:
    """Return the vehicle's samples of the signals trips use, and its scored device events."""
    start, end = day_bounds(day)
    signals = DaySignals()
    rows = await conn.fetch(
        DAY_SAMPLES_SQL,
        tenant,
        vehicle,
        start,
        end,
        list(_FIELDS),
    )
    for r in rows:
        getattr(signals, _FIELDS[r["signal_id"]]).append((r["t"], r["value"]))
    for r in await conn.fetch(
        """SELECT id, extract(epoch FROM ts)::float8 AS t, type, data FROM events
           WHERE tenant_id = $1 AND vehicle_id = $2 AND ts >= $3 AND ts < $4
             AND type = ANY($5::text[])""",
        tenant,
        vehicle,
        start,
        end,
        sorted(SCORED_DEVICE_TYPES),
    ):
        data = r["data"]
        signals.events.append(
            DeviceEvent(
                r["id"], r["t"], r["type"], json.loads(data) if isinstance(data, str) else data
            )
        )
    return signals


async def store_day(
    conn: asyncpg.Connection, tenant: str, vehicle: uuid.UUID, day: date, trips: Sequence[Trip]
) -> None:
    """Replace the vehicle's trips and driving events of ``day`` with ``trips``."""
    await conn.execute(
        "DELETE FROM driving_events WHERE vehicle_id = $1 AND day = $2", vehicle, day
    )
    await conn.execute("DELETE FROM trips WHERE vehicle_id = $1 AND day = $2", vehicle, day)
    if not trips:
        return
    await conn.copy_records_to_table(
        "trips",
        records=[
            (
                t.id,
                tenant,
                vehicle,
                day,
                as_datetime(t.started_at),
                as_datetime(t.ended_at),
                t.duration_s,
                t.distance_km,
                t.idle_s,
                t.max_speed_kmh,
                t.fuel_used_l,
                t.engine_hours,
                *(t.start_position or (None, None)),
                *(t.end_position or (None, None)),
            )
            for t in trips
        ],
        columns=(
            "id",
            "tenant_id",
            "vehicle_id",
            "day",
            "started_at",
            "ended_at",
            "duration_s",
            "distance_km",
            "idle_s",
            "max_speed_kmh",
            "fuel_used_l",
            "engine_hours",
            "start_lat",
            "start_lon",
            "end_lat",
            "end_lon",
        ),
    )
    events = [e for t in trips for e in t.events]
    if events:
        await conn.executemany(
            """INSERT INTO driving_events (id, tenant_id, vehicle_id, trip_id, day, ts, type,
                                           source, event_id, duration_s, magnitude, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)""",
            [
                (
                    e.id,
                    tenant,
                    vehicle,
                    e.trip_id,
                    day,
                    as_datetime(e.ts),
                    e.type,
                    e.source,
                    e.event_id,
                    e.duration_s,
                    e.magnitude,
                    json.dumps(e.data),
                )
                for e in events
            ],
        )


async def recompute_day(
    conn: asyncpg.Connection,
    tenant: str,
    vehicle: uuid.UUID,
    day: date,
    rules: ScoringRules,
) -> list[Trip]:
    """Recompute and store one (vehicle, day); return its trips. Speeding is judged
    against the tenant's speed zones where the vehicle was inside one (D54); a driver whose
    score of the day changed is notified in the same transaction (D55)."""
    fences = await load_fences(conn, tenant)
    zoned = any(f.speed_limit_kmh is not None for f in fences.fences)
    trips = compute_day(
        vehicle,
        await load_day(conn, tenant, vehicle, day),
        rules.detection.detection(),
        fences.speed_limit_at if zoned else None,
    )
    before = await day_scores(conn, tenant, vehicle, day, rules)
    await store_day(conn, tenant, vehicle, day, trips)
    after = await day_scores(conn, tenant, vehicle, day, rules, also=before)
    await notify_changed(conn, tenant, day, before, after)
    await rebuild_day(conn, tenant, vehicle, day)
    return trips


RulesCache = dict[str, ScoringRules]


async def recompute_marked(pool: asyncpg.Pool, *, limit: int = 64, settle_s: float = 0.0) -> int:
    """Claim and recompute up to ``limit`` marked days, each in its own transaction (so a
    writer waits at most one day's recomputation for a mark); return how many were done.

    A day whose recomputation fails stays marked and goes to the back of the queue (so it
    cannot hold up the others); the error is logged and counted in ``ingest_counters``.
    """
    done = 0
    rules: RulesCache = {}
    for _ in range(limit):
        claimed: list[DirtyDay] = []
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    claimed = await claim(conn, 1, settle_s)
                    if not claimed:
                        return done
                    tenant, vehicle, day = claimed[0]
                    if tenant not in rules:
                        rules[tenant] = await rules_of(conn, tenant)
                    await recompute_day(conn, tenant, vehicle, day, rules[tenant])
            except (asyncpg.PostgresError, ValueError) as exc:
                if not claimed:
                    raise
                log.warning("recomputing %s failed (%s); it stays marked", claimed[0], exc)
                await conn.execute(
                    """INSERT INTO trip_dirty (tenant_id, vehicle_id, day) VALUES ($1, $2, $3)
                       ON CONFLICT (vehicle_id, day) DO UPDATE SET marked_at = now()""",
                    *claimed[0],
                )
                await conn.execute(
                    "INSERT INTO ingest_counters (name, count) VALUES ('trip_recompute_failed', 1) "
                    "ON CONFLICT (name) DO UPDATE SET count = ingest_counters.count + 1"
                )
                continue
        done += 1
    return done
