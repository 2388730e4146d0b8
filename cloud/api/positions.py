"""``/api/v1/positions``: where each vehicle of the tenant was last seen, for the map."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.signals import FINITE
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.shared.signals import by_name

api = ResourceRoutes("positions")
routes = api.routes

LATITUDE = by_name("Vehicle.CurrentLocation.Latitude").id
LONGITUDE = by_name("Vehicle.CurrentLocation.Longitude").id
SPEED = by_name("Vehicle.Speed").id


class Position(BaseModel):
    vehicle_id: uuid.UUID
    name: str
    plate: str | None
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    ts: datetime = Field(description="When the newer of latitude and longitude was sampled")
    speed_kmh: float | None = Field(description="The newest Vehicle.Speed, if any")


class Positions(BaseModel):
    items: list[Position] = Field(description="Vehicles with a known position, by name")


async def latest_positions(
    conn: asyncpg.Connection, tenant: str, accept_future_s: float
) -> Positions:
    """Return the newest known position of each of ``tenant``'s vehicles that has one (values
    beyond the ingest's clock window into the future are not "newest")."""
    rows = await conn.fetch(
        f"""WITH newest AS (
                SELECT vehicle_id, signal_id, ts, value FROM latest_signals
                WHERE tenant_id = $1 AND signal_id = ANY($2::int[]) AND {FINITE}
                  AND ts <= now() + $3::interval)
            SELECT v.id AS vehicle_id, v.name, v.plate, la.value AS latitude,
                   lo.value AS longitude, greatest(la.ts, lo.ts) AS ts, sp.value AS speed_kmh
            FROM vehicles v
            JOIN newest la ON la.vehicle_id = v.id AND la.signal_id = $4
            JOIN newest lo ON lo.vehicle_id = v.id AND lo.signal_id = $5
            LEFT JOIN newest sp ON sp.vehicle_id = v.id AND sp.signal_id = $6
            WHERE v.tenant_id = $1 AND la.value BETWEEN -90 AND 90
              AND lo.value BETWEEN -180 AND 180
            ORDER BY v.name, v.id""",
        tenant,
        [LATITUDE, LONGITUDE, SPEED],
        timedelta(seconds=accept_future_s),
        LATITUDE,
        LONGITUDE,
        SPEED,
    )
    return Positions(items=[Position.model_validate(dict(r)) for r in rows])


@api.get(
    "/api/v1/positions",
    summary="The newest known position (and speed) of every vehicle that has one",
    response=Positions,
    permission=Permission.SIGNALS_READ,
)
async def get_positions(request: web.Request) -> web.Response:
    accept_future_s = request.app[SETTINGS].ingest_accept_future_s
    async with tenant_transaction(request) as conn:
        positions = await latest_positions(conn, principal_of(request).tenant_id, accept_future_s)
    return web.json_response(text=positions.model_dump_json())
