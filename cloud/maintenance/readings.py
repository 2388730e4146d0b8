"""A vehicle's odometer and engine hours now, from its profile and its latest signals, and the
fallback distance integrated from speed where the vehicle reports no odometer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fleetlink.shared.signals import by_name

ODOMETER = by_name("Vehicle.TraveledDistance").id
ENGINE_HOURS = by_name("Vehicle.Powertrain.CombustionEngine.EngineHours").id
SPEED = by_name("Vehicle.Speed").id
MAX_GAP_S = 60  # samples further apart than this are a gap, not a constant speed


@dataclass(frozen=True, slots=True)
class VehicleReading:
    vehicle_id: uuid.UUID
    name: str
    fleet_id: uuid.UUID | None
    odometer_km: float | None
    engine_hours: float | None


async def vehicle_readings(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID | None = None
) -> list[VehicleReading]:
    """Return every vehicle in service (or just ``vehicle_id``) with the larger of its profile's
    odometer/engine hours and the latest reported signal (the profile may be set by hand)."""
    rows = await conn.fetch(
        """SELECT v.id, v.name, v.fleet_id,
                  greatest(v.odometer_km, o.value) AS odometer_km,
                  greatest(v.engine_hours, h.value) AS engine_hours
           FROM vehicles v
           LEFT JOIN latest_signals o ON o.vehicle_id = v.id AND o.signal_id = $2
           LEFT JOIN latest_signals h ON h.vehicle_id = v.id AND h.signal_id = $3
           WHERE v.tenant_id = $1 AND v.status <> 'retired'
             AND ($4::uuid IS NULL OR v.id = $4)
           ORDER BY v.name, v.id""",
        tenant,
        ODOMETER,
        ENGINE_HOURS,
        vehicle_id,
    )
    return [
        VehicleReading(r["id"], r["name"], r["fleet_id"], r["odometer_km"], r["engine_hours"])
        for r in rows
    ]


async def distance_from_speed_km(
    conn: asyncpg.Connection, vehicle_id: uuid.UUID, since: datetime, until: datetime
) -> float:
    """Return the distance in km integrated (trapezoids) from the vehicle's speed samples in
    [since, until); gaps longer than MAX_GAP_S count as stationary."""
    value = await conn.fetchval(
        """SELECT coalesce(sum((value + prev) / 2.0 * extract(epoch FROM ts - prev_ts)), 0) / 3600
           FROM (SELECT value, ts, lag(value) OVER w AS prev, lag(ts) OVER w AS prev_ts
                 FROM samples_between($1, $3, $4) WHERE signal_id = $2
                 WINDOW w AS (ORDER BY ts)) s
           WHERE prev_ts IS NOT NULL AND ts - prev_ts <= make_interval(secs => $5)""",
        vehicle_id,
        SPEED,
        since,
        until,
        MAX_GAP_S,
    )
    return float(value)
