"""The fleet overview (``/portal/``): the fleet's key figures at a glance."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.vehicles import FacetQuery, VehicleFacets, vehicle_facet_counts
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.page import Page


class Overview(BaseModel):
    vehicles: VehicleFacets


async def load(request: web.Request, conn: asyncpg.Connection) -> Overview:
    """Return the overview's figures of the caller's tenant."""
    tenant = principal_of(request).tenant_id
    return Overview(vehicles=await vehicle_facet_counts(conn, tenant, FacetQuery()))


page = Page(
    name="overview",
    path="/portal/",
    title="Fleet overview",
    permission=Permission.VEHICLES_READ,
    load=load,
    nav="Overview",
)
