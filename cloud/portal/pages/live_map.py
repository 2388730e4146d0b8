"""The live map (``/portal/map``): where each vehicle is and the tenant's geofences; markers
move as positions arrive on the live stream. A table lists the same positions (the map's text
alternative). Roles with ``geofences:write`` add circular fences (centre and radius typed in)
and delete fences, through the API's own functions."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.geofences import (
    GeofenceCollection,
    add_geofence,
    fences_changed,
    geofence_collection,
    remove_geofence,
)
from fleetlink.cloud.api.positions import Positions, latest_positions
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.app_keys import SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_page import page_after_form, posted_fields
from fleetlink.cloud.portal.geofence_form import GeofenceFormError, circle_from_form
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.map_view import map_view
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error

PATH = "/portal/map"


class LiveMap(BaseModel):
    positions: Positions
    geofences: GeofenceCollection | None
    may_edit_geofences: bool
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
        may_edit_geofences=principal.can(Permission.GEOFENCES_WRITE),
        tile_url=settings.portal_tile_url,
    )


def view(data: LiveMap) -> dict[str, object]:
    fences = data.geofences.features if data.geofences else []
    return {"map": map_view(data.positions.items, fences, data.tile_url)}


page = Page(
    name="live_map",
    path=PATH,
    title="Live map",
    permission=Permission.SIGNALS_READ,
    load=load,
    nav="Map",
    view=view,
)


async def create_geofence(request: web.Request) -> web.StreamResponse:
    """Add the form's circular geofence as the API's POST does; show the page with a notice
    (201), or the errors next to their fields (422, 409) with nothing stored."""
    form = await posted_fields(request)
    async with tenant_transaction(request) as conn:
        try:
            fence, version = await add_geofence(request, conn, circle_from_form(form))
        except GeofenceFormError as refused:
            return await page_after_form(request, conn, page, 422, errors=refused.errors, form=form)
        except ProblemError as refused:
            field = "name" if refused.status == 409 and refused.errors else "form"
            errors = {field: refused.detail[:1].upper() + refused.detail[1:] + "."}
            status = refused.status if refused.status in (409, 422) else 422
            return await page_after_form(request, conn, page, status, errors=errors, form=form)
        notice = f"The geofence {fence.properties.name} is added."
        response = await page_after_form(request, conn, page, 201, notice=notice)
    await fences_changed(request, principal_of(request).tenant_id, version)
    return response


async def delete_geofence(request: web.Request) -> web.StreamResponse:
    """Delete the geofence of the path as the API's DELETE does; show the page with a notice."""
    try:
        geofence_id = path_uuid(request, "geofence_id")
        async with tenant_transaction(request) as conn:
            gone, version = await remove_geofence(request, conn, geofence_id)
            notice = f"The geofence {gone.properties.name} is deleted."
            response = await page_after_form(request, conn, page, notice=notice)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)
    await fences_changed(request, principal_of(request).tenant_id, version)
    return response


routes = web.RouteTableDef()
routes.post(f"{PATH}/geofences")(portal_guard(create_geofence, Permission.GEOFENCES_WRITE))
routes.post(PATH + "/geofences/{geofence_id}/delete")(
    portal_guard(delete_geofence, Permission.GEOFENCES_WRITE)
)
