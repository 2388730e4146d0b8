"""What each driver drove in a range of days: their trips (through the time-ranged driver
assignments: a trip belongs to whoever was assigned to its vehicle when it started) and the
driving events of those trips."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

# The driver of trip ``t``: whoever was assigned to its vehicle when it started (the latest
# assignment, should two overlap), as ``a.driver_id`` (NULL when nobody was).
DRIVER_OF_TRIP_SQL = """LEFT JOIN LATERAL (
        SELECT da.driver_id FROM driver_assignments da
        WHERE da.vehicle_id = t.vehicle_id AND da.tenant_id = t.tenant_id
          AND t.started_at >= da.valid_from
          AND (da.valid_to IS NULL OR t.started_at < da.valid_to)
        ORDER BY da.valid_from DESC, da.id DESC LIMIT 1) a ON true"""

_TRIPS_OF_DRIVERS = f"""
    SELECT a.driver_id, t.id, t.vehicle_id, t.day, t.started_at, t.ended_at, t.duration_s,
           t.distance_km, t.idle_s, t.max_speed_kmh, t.fuel_used_l, t.engine_hours
    FROM trips t {DRIVER_OF_TRIP_SQL}
    WHERE t.tenant_id = $1 AND t.day >= $2 AND t.day < $3 AND a.driver_id IS NOT NULL
      AND ($4::uuid IS NULL OR a.driver_id = $4)"""


@dataclass(frozen=True, slots=True)
class DriverTrip:
    id: uuid.UUID
    vehicle_id: uuid.UUID
    day: date
    started_at: datetime
    distance_km: float
    duration_s: float
    idle_s: float
    fuel_used_l: float | None


@dataclass(frozen=True, slots=True)
class ScoredEventRow:
    id: uuid.UUID
    trip_id: uuid.UUID
    vehicle_id: uuid.UUID
    ts: datetime
    type: str
    source: str
    event_id: uuid.UUID | None
    duration_s: float
    magnitude: float | None
    data: dict[str, Any]


@dataclass(slots=True)
class Activity:
    """One driver's trips and driving events in a range, oldest first."""

    trips: list[DriverTrip] = field(default_factory=list)
    events: list[ScoredEventRow] = field(default_factory=list)

    @property
    def distance_km(self) -> float:
        return sum(t.distance_km for t in self.trips)


async def activity_by_driver(
    conn: asyncpg.Connection,
    tenant: str,
    start: date,
    end: date,
    driver: uuid.UUID | None = None,
) -> dict[uuid.UUID, Activity]:
    """Return each driver's activity on the days [start, end) (only ``driver`` if given)."""
    found: dict[uuid.UUID, Activity] = defaultdict(Activity)
    for r in await conn.fetch(
        _TRIPS_OF_DRIVERS + " ORDER BY t.started_at, t.id", tenant, start, end, driver
    ):
        found[r["driver_id"]].trips.append(
            DriverTrip(
                r["id"],
                r["vehicle_id"],
                r["day"],
                r["started_at"],
                r["distance_km"],
                r["duration_s"],
                r["idle_s"],
                r["fuel_used_l"],
            )
        )
    for r in await conn.fetch(
        f"""WITH t AS ({_TRIPS_OF_DRIVERS})
            SELECT t.driver_id, e.id, e.trip_id, e.vehicle_id, e.ts, e.type, e.source,
                   e.event_id, e.duration_s, e.magnitude, e.data
            FROM driving_events e JOIN t ON e.trip_id = t.id
            ORDER BY e.ts, e.id""",
        tenant,
        start,
        end,
        driver,
    ):
        data = r["data"]
        found[r["driver_id"]].events.append(
            ScoredEventRow(
                r["id"],
                r["trip_id"],
                r["vehicle_id"],
                r["ts"],
                r["type"],
                r["source"],
                r["event_id"],
                r["duration_s"],
                r["magnitude"],
                json.loads(data) if isinstance(data, str) else data,
            )
        )
    return dict(found)
