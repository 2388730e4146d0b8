"""The live map (``/portal/map``): where each vehicle is and the tenant's geofences; markers
move as positions arrive on the live stream. A table lists the same positions (the map's text
alternative)."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.geofences import GeofenceCollection, geofence_collection
from fleetlink.cloud.api.positions import Positions, latest_positions
from fleetlink.cloud.app_keys import SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.map_view import map_view
from fleetlink.cloud.portal.page import Page


class LiveMap(BaseModel):
    positions: Positions
    geofences: GeofenceCollection | None
    tile_url: str | None


async def load(request: web.Request, conn: asyncpg.Connection) -> LiveMap:
    """Return the vehicles' newest positions and, for roles that may read them, the fences."""
    principal = principal_of(request)
    settings = request.app[SETTINGS]
    fences = None
    if principal.can(Permission.GEOFENCES_READ):
        fences = await geofence_collection(conn, principal.tenant_id)
    return LiveMap(
        positions=await latest_positions(
            conn, principal.tenant_id, settings.ingest_accept_future_s
        ),
        geofences=fences,
        tile_url=settings.portal_tile_url,
    )


def view(data: LiveMap) -> dict[str, object]:
    fences = data.geofences.features if data.geofences else []
    return {"map": map_view(data.positions.items, fences, data.tile_url)}


page = Page(
    name="live_map",
    path="/portal/map",
    title="Live map",
    permission=Permission.SIGNALS_READ,
    load=load,
    nav="Map",
    view=view,
)
