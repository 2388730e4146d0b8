"""A tenant's fences as loaded from the database, and the speed limit they set at a point."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from fleetlink.cloud.geofences.geometry import Shape, parse_shape


@dataclass(frozen=True, slots=True)
class Fence:
    id: uuid.UUID
    name: str
    shape: Shape
    speed_limit_kmh: float | None
    dwell_s: int | None


@dataclass(frozen=True, slots=True)
class FenceSet:
    """Every fence of one tenant."""

    tenant: str
    fences: tuple[Fence, ...]

    def containing(self, lat: float, lon: float) -> list[Fence]:
        """Return the fences the point lies in."""
        return [f for f in self.fences if f.shape.contains(lat, lon)]

    def speed_limit_at(self, lat: float, lon: float) -> float | None:
        """Return the lowest speed limit (km/h) of the speed zones the point lies in, or None."""
        limits = [
            f.speed_limit_kmh
            for f in self.fences
            if f.speed_limit_kmh is not None and f.shape.contains(lat, lon)
        ]
        return min(limits) if limits else None


_COLUMNS = "id, name, geometry, radius_m, speed_limit_kmh, dwell_s"


def _fence(row: asyncpg.Record) -> Fence:
    geometry: Any = row["geometry"]
    if isinstance(geometry, str):  # the owner's pool reads jsonb as text
        geometry = json.loads(geometry)
    return Fence(
        row["id"],
        row["name"],
        parse_shape(geometry, row["radius_m"]),
        row["speed_limit_kmh"],
        row["dwell_s"],
    )


async def load_fences(conn: asyncpg.Connection, tenant: str) -> FenceSet:
    """Return the tenant's fences (stored fences were validated on the way in)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM geofences WHERE tenant_id = $1 ORDER BY name", tenant
    )
    return FenceSet(tenant, tuple(_fence(r) for r in rows))


async def speed_limit_at(
    conn: asyncpg.Connection, tenant: str, lat: float, lon: float
) -> float | None:
    """Return the speed limit (km/h) the tenant's speed zones set at one point, or None.

    For many points, load the fences once with :func:`load_fences` and call
    ``FenceSet.speed_limit_at``.
    """
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM geofences
            WHERE tenant_id = $1 AND speed_limit_kmh IS NOT NULL
              AND $2 BETWEEN min_lat AND max_lat AND $3 BETWEEN min_lon AND max_lon""",
        tenant,
        lat,
        lon,
    )
    return FenceSet(tenant, tuple(_fence(r) for r in rows)).speed_limit_at(lat, lon)
