"""The vehicles list (``/portal/vehicles``): search, filter by facets, page through."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.vehicles import (
    FacetQuery,
    VehicleFacets,
    VehicleList,
    VehicleQuery,
    vehicle_facet_counts,
    vehicle_list,
)
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.page import Page


class VehiclesPage(BaseModel):
    query: VehicleQuery
    vehicles: VehicleList
    facets: VehicleFacets


async def load(request: web.Request, conn: asyncpg.Connection) -> VehiclesPage:
    """Return the page of vehicles the query string asks for, with the matches' facets."""
    tenant = principal_of(request).tenant_id
    query = form_query(request, VehicleQuery)
    filters = FacetQuery.model_validate(query.model_dump(include=set(FacetQuery.model_fields)))
    return VehiclesPage(
        query=query,
        vehicles=await vehicle_list(conn, tenant, query),
        facets=await vehicle_facet_counts(conn, tenant, filters),
    )


page = Page(
    name="vehicles",
    path="/portal/vehicles",
    title="Vehicles",
    permission=Permission.VEHICLES_READ,
    load=load,
    nav="Vehicles",
)
