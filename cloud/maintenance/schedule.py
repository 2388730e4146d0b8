"""The due list: every active plan against every vehicle it applies to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time

import asyncpg

from fleetlink.cloud.maintenance.due import Due, Intervals, Reading, due
from fleetlink.cloud.maintenance.readings import (
    VehicleReading,
    distance_from_speed_km,
    vehicle_readings,
)


@dataclass(frozen=True, slots=True)
class DueItem:
    plan_id: uuid.UUID
    plan_name: str
    vehicle_id: uuid.UUID
    vehicle_name: str
    last_service: Reading
    now: Reading
    distance_source: str  # "odometer", "speed" (integrated) or "none"
    state: Due


def _applies(plan: asyncpg.Record, vehicle: VehicleReading) -> bool:
    if plan["vehicle_id"] is not None:
        return bool(plan["vehicle_id"] == vehicle.vehicle_id)
    if plan["fleet_id"] is not None:
        return bool(plan["fleet_id"] == vehicle.fleet_id)
    return True


async def due_items(
    conn: asyncpg.Connection,
    tenant: str,
    now: datetime | None = None,
    vehicle_id: uuid.UUID | None = None,
) -> list[DueItem]:
    """Return the state of every active plan for every vehicle in service it applies to.

    A plan's intervals run from the last work record that names it (its odometer, engine
    hours and date), else from the plan's start values. A vehicle that reports no odometer
    has its distance integrated from speed since that last service.
    """
    now = now or datetime.now(UTC)
    plans = await conn.fetch(
        "SELECT * FROM maintenance_plans WHERE tenant_id = $1 AND active ORDER BY name, id",
        tenant,
    )
    if not plans:
        return []
    vehicles = await vehicle_readings(conn, tenant, vehicle_id)
    last = {
        (r["plan_id"], r["vehicle_id"]): r
        for r in await conn.fetch(
            """SELECT DISTINCT ON (plan_id, vehicle_id) plan_id, vehicle_id, performed_at,
                      odometer_km, engine_hours
               FROM work_records WHERE tenant_id = $1 AND plan_id IS NOT NULL
               ORDER BY plan_id, vehicle_id, performed_at DESC""",
            tenant,
        )
    }
    items = []
    for plan in plans:
        intervals = Intervals(
            plan["interval_km"],
            plan["interval_hours"],
            plan["interval_days"],
            plan["warn_fraction"],
        )
        for vehicle in vehicles:
            if not _applies(plan, vehicle):
                continue
            record = last.get((plan["id"], vehicle.vehicle_id))
            if record is not None:
                since = record["performed_at"]
                service = Reading(
                    record["odometer_km"], record["engine_hours"], since.astimezone(UTC).date()
                )
            else:
                since = datetime.combine(plan["start_date"], time(), UTC)
                service = Reading(
                    plan["start_odometer_km"], plan["start_engine_hours"], plan["start_date"]
                )
            reading = Reading(vehicle.odometer_km, vehicle.engine_hours, now.date())
            source = "odometer" if vehicle.odometer_km is not None else "none"
            if vehicle.odometer_km is None and intervals.km is not None:
                driven = await distance_from_speed_km(conn, vehicle.vehicle_id, since, now)
                reading = Reading(driven, vehicle.engine_hours, now.date())
                service = Reading(0.0, service.engine_hours, service.on)
                source = "speed"
            items.append(
                DueItem(
                    plan["id"],
                    plan["name"],
                    vehicle.vehicle_id,
                    vehicle.name,
                    service,
                    reading,
                    source,
                    due(intervals, service, reading),
                )
            )
    return items
