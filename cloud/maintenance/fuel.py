"""Fuel used, from the engine's fuel-rate or mass-air-flow signals, and the litres that less
idling and lower motorway speeds would have saved.

Method: the vehicle's data is cut into one-minute buckets. A bucket's fuel is its mean fuel
rate (l/h) times the time covered, or, without a fuel-rate signal, its mean mass air flow
divided by the stoichiometric air-fuel ratio and the fuel's density (petrol 14.7 and 745 g/l,
diesel 14.5 and 832 g/l; a diesel runs lean, so MAF overstates its fuel). A bucket is idle when
its top speed is under 1 km/h while fuel flows.
- Idling: every idle minute after the first two of an unbroken idle stretch could have been
  spent with the engine off; its fuel is the saving.
- Speed: above 100 km/h about half the fuel fights air drag, which grows with the square of
  speed; the saving of a minute at mean speed v is ``fuel x 0.5 x (1 - (100 / v)^2)``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fleetlink.shared.signals import by_name

FUEL_RATE = by_name("Vehicle.OBD.FuelRate").id
MAF = by_name("Vehicle.Powertrain.CombustionEngine.MAF").id
SPEED = by_name("Vehicle.Speed").id
IDLE_GRACE_MIN = 2
CRUISE_KMH = 100.0
AERO_SHARE = 0.5
# grams of air per litre of fuel burnt: air-fuel ratio x fuel density (g/l)
AIR_G_PER_L = {"diesel": 14.5 * 832.0}
PETROL_AIR_G_PER_L = 14.7 * 745.0


@dataclass(frozen=True, slots=True)
class FuelUse:
    litres: float
    source: str  # "fuel_rate", "maf" or "none"
    idle_hours: float
    idle_saving_l: float
    speed_saving_l: float


async def fuel_use(
    conn: asyncpg.Connection,
    vehicle_id: uuid.UUID,
    fuel_type: str | None,
    since: datetime,
    until: datetime,
) -> FuelUse:
    """Return the fuel the vehicle burnt in [since, until) and the savings described above."""
    rows = await conn.fetch(
        """SELECT date_bin('1 minute', ts, TIMESTAMPTZ '2000-01-01') AS minute,
                  avg(value) FILTER (WHERE signal_id = $2) AS rate_lph,
                  avg(value) FILTER (WHERE signal_id = $3) AS maf_gs,
                  avg(value) FILTER (WHERE signal_id = $4) AS speed_kmh,
                  max(value) FILTER (WHERE signal_id = $4) AS top_kmh
           FROM samples_between($1, $5, $6)
           WHERE signal_id IN ($2, $3, $4)
           GROUP BY 1 ORDER BY 1""",
        vehicle_id,
        FUEL_RATE,
        MAF,
        SPEED,
        since,
        until,
    )
    has_rate = any(r["rate_lph"] is not None for r in rows)
    has_maf = any(r["maf_gs"] is not None for r in rows)
    air_g_per_l = AIR_G_PER_L.get(fuel_type or "", PETROL_AIR_G_PER_L)
    litres = idle_h = idle_saving = speed_saving = 0.0
    stretch = 0
    previous: datetime | None = None
    for r in rows:
        if has_rate:
            minute_l = (r["rate_lph"] or 0.0) / 60.0
        elif has_maf:
            minute_l = (r["maf_gs"] or 0.0) * 60.0 / air_g_per_l
        else:
            minute_l = 0.0
        litres += minute_l
        idle = minute_l > 0 and r["top_kmh"] is not None and r["top_kmh"] < 1.0
        contiguous = previous is not None and (r["minute"] - previous).total_seconds() == 60
        stretch = (stretch + 1 if contiguous else 1) if idle else 0
        previous = r["minute"]
        if idle:
            idle_h += 1 / 60
            if stretch > IDLE_GRACE_MIN:
                idle_saving += minute_l
        speed = r["speed_kmh"]
        if speed is not None and speed > CRUISE_KMH:
            speed_saving += minute_l * AERO_SHARE * (1.0 - (CRUISE_KMH / speed) ** 2)
    source = "fuel_rate" if has_rate else "maf" if has_maf else "none"
    return FuelUse(litres, source, idle_h, idle_saving, speed_saving)
