"""A vehicle's recent days, summarised for the risk model from its samples and events."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from fleetlink.cloud.maintenance.readings import ODOMETER, distance_from_speed_km
from fleetlink.cloud.maintenance.risk import WINDOW_DAYS, DaySummary
from fleetlink.shared.event_types import ANOMALY, DTC_SET
from fleetlink.shared.signals import by_name

BATTERY = by_name("Vehicle.LowVoltageBattery.CurrentVoltage").id
COOLANT = by_name("Vehicle.Powertrain.CombustionEngine.ECT").id


async def day_summaries(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID, now: datetime
) -> list[DaySummary]:
    """Return one summary per UTC day of the WINDOW_DAYS before ``now``'s day that has data.

    The battery's daily low is the 5th percentile of its voltage (a cranking dip is not a
    resting voltage); the coolant's daily high is its maximum; distance comes from the
    odometer signal's daily span, or from speed when the vehicle reports no odometer.
    """
    end = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
    start = end - timedelta(days=WINDOW_DAYS)
    rows = await conn.fetch(
        """SELECT (ts AT TIME ZONE 'UTC')::date AS day,
                  percentile_cont(0.05) WITHIN GROUP (ORDER BY value)
                      FILTER (WHERE signal_id = $3) AS battery_low_v,
                  max(value) FILTER (WHERE signal_id = $4) AS coolant_high_c,
                  max(value) FILTER (WHERE signal_id = $5)
                      - min(value) FILTER (WHERE signal_id = $5) AS km
           FROM samples_between($1, $2, $6)
           WHERE signal_id IN ($3, $4, $5)
           GROUP BY 1""",
        vehicle_id,
        start,
        BATTERY,
        COOLANT,
        ODOMETER,
        end,
    )
    events = await conn.fetch(
        """SELECT (ts AT TIME ZONE 'UTC')::date AS day,
                  count(*) FILTER (WHERE type = $4) AS dtcs,
                  count(*) FILTER (WHERE type = $5) AS anomalies
           FROM events WHERE tenant_id = $1 AND vehicle_id = $2 AND ts >= $3 AND ts < $6
             AND type IN ($4, $5)
           GROUP BY 1""",
        tenant,
        vehicle_id,
        start,
        DTC_SET,
        ANOMALY,
        end,
    )
    days: dict[object, DaySummary] = {
        r["day"]: DaySummary(r["day"], r["km"] or 0.0, r["battery_low_v"], r["coolant_high_c"])
        for r in rows
    }
    if not any(r["km"] for r in rows):
        # No odometer: spread the distance integrated from speed evenly (only the total counts).
        km = await distance_from_speed_km(conn, vehicle_id, start, end)
        if km:
            first = days.get(start.date(), DaySummary(start.date()))
            days[start.date()] = replace(first, km=km)
    for e in events:
        base = days.get(e["day"], DaySummary(e["day"]))
        days[e["day"]] = replace(base, dtcs=e["dtcs"], anomalies=e["anomalies"])
    return sorted(days.values(), key=lambda d: d.day)
