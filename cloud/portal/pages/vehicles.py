"""The vehicles list (``/portal/vehicles``): search, facets to narrow by status and make,
paging, and the caller's saved searches (saving one is a POST form: the API's store_search);
for roles that may change vehicles, a form that adds one (the API's add_vehicle)."""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import urlencode

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.searches import (
    SavedSearchCreate,
    SavedSearchList,
    saved_searches,
    store_search,
)
from fleetlink.cloud.api.vehicles import (
    FacetQuery,
    VehicleCreate,
    VehicleFacets,
    VehicleList,
    VehicleQuery,
    add_vehicle,
    vehicle_facet_counts,
    vehicle_list,
)
from fleetlink.cloud.app_keys import WEBHOOK_DISPATCHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_page import answer_form, posted_fields
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error
from fleetlink.cloud.portal.vehicle_form import add_refusal, parsed, profile_fields
from fleetlink.cloud.records.vehicle_profile import FuelType

PATH = "/portal/vehicles"
NEW_VEHICLE_FIELDS = ("plate", "vin", "name", "fuel_type", "tank_capacity_l", "odometer_km", "tags")


class VehiclesPage(BaseModel):
    query: VehicleQuery
    vehicles: VehicleList
    facets: VehicleFacets
    searches: SavedSearchList | None
    saved: bool
    may_change: bool


async def load(request: web.Request, conn: asyncpg.Connection) -> VehiclesPage:
    """Return the page of vehicles the query string asks for, the matches' facets and the
    caller's saved searches (None for roles without them)."""
    principal = principal_of(request)
    query = form_query(request, VehicleQuery, drop=("saved",))
    filters = FacetQuery.model_validate(query.model_dump(include=set(FacetQuery.model_fields)))
    searches = None
    if principal.can(Permission.SEARCHES_OWN):
        searches = await saved_searches(conn, principal.tenant_id, principal.user_id)
    return VehiclesPage(
        query=query,
        vehicles=await vehicle_list(conn, principal.tenant_id, query),
        facets=await vehicle_facet_counts(conn, principal.tenant_id, filters),
        searches=searches,
        saved="saved" in request.query,
        may_change=principal.can(Permission.VEHICLES_WRITE),
    )


def filter_url(query: VehicleQuery, **changes: str | None) -> str:
    """Return the list's URL with ``query``'s filters, ``changes`` applied (None removes)."""
    params = query.model_dump(mode="json", exclude={"limit", "cursor"}, exclude_none=True)
    if params.get("sort") == "name":
        del params["sort"]
    params.update(changes)
    kept = {k: v for k, v in params.items() if v is not None}
    return f"{PATH}?{urlencode(kept)}" if kept else PATH


def view(data: VehiclesPage) -> dict[str, object]:
    return {"filter_url": filter_url, "fuel_types": get_args(FuelType)}


page = Page(
    name="vehicles",
    path=PATH,
    title="Vehicles",
    permission=Permission.VEHICLES_READ,
    load=load,
    nav="Vehicles",
    view=view,
)

routes = web.RouteTableDef()


async def _save(request: web.Request) -> web.StreamResponse:
    """Save the search in the form's fields under its name; show it again (303)."""
    form = await request.post()
    fields = {
        k: v
        for k, v in form.items()
        if k in ("q", "status", "make", "fleet_id", "tag", "sort") and isinstance(v, str) and v
    }
    try:
        body = SavedSearchCreate.model_validate({"name": form.get("name", ""), "query": fields})
    except ValidationError:
        return render_error(request, 422, "Give the search a name (up to 200 characters).")
    principal = principal_of(request)
    try:
        async with tenant_transaction(request) as conn:
            await store_search(conn, principal.tenant_id, principal.user_id, body)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, "vehicles")
    query = VehicleQuery.model_validate(fields)
    raise web.HTTPSeeOther(filter_url(query, saved="1"))


routes.post(PATH + "/searches")(portal_guard(_save, Permission.SEARCHES_OWN))


async def _add(request: web.Request) -> web.StreamResponse:
    """Add the form's vehicle through the API's add_vehicle (VIN checked and decoded, name
    defaulted, audited, its webhooks queued); show the list with a link to it (201), or the
    errors next to their fields with nothing stored (422; 409 for a plate or VIN in use)."""
    form = await posted_fields(request)

    async def add(conn: asyncpg.Connection) -> dict[str, Any]:
        fields = profile_fields(form, NEW_VEHICLE_FIELDS)
        body = parsed(VehicleCreate, {k: v for k, v in fields.items() if v is not None})
        try:
            return {"created": await add_vehicle(request, conn, body)}
        except ProblemError as refused:
            raise add_refusal(refused) from None

    answer = await answer_form(request, page, form, add, status=201)
    if answer.status == 201:  # committed: its vehicle.registered webhooks wait
        request.app[WEBHOOK_DISPATCHER].wake()
    return answer


routes.post(PATH)(portal_guard(_add, Permission.VEHICLES_WRITE))
