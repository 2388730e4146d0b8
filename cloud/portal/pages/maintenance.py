"""The maintenance board (``/portal/maintenance``): what is due, the failure risk of each
vehicle and the latest work done."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.maintenance import (
    DueEntry,
    DueQuery,
    RiskList,
    WorkRecord,
    WorkRecordQuery,
    due_list,
    risk_list,
    work_records,
)
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.page import Page

RECENT_RECORDS = 20


class MaintenancePage(BaseModel):
    query: DueQuery
    due: list[DueEntry]
    risk: RiskList
    records: list[WorkRecord]


async def load(request: web.Request, conn: asyncpg.Connection) -> MaintenancePage:
    """Return the plans in the state the query string asks for (default: due or overdue),
    the vehicles' failure risk and the latest work records."""
    tenant = principal_of(request).tenant_id
    query = form_query(request, DueQuery)
    records, _ = await work_records(conn, tenant, WorkRecordQuery(limit=RECENT_RECORDS))
    return MaintenancePage(
        query=query,
        due=await due_list(conn, tenant, query),
        risk=await risk_list(conn, tenant),
        records=records,
    )


page = Page(
    name="maintenance",
    path="/portal/maintenance",
    title="Maintenance board",
    permission=Permission.MAINTENANCE_READ,
    load=load,
    nav="Maintenance",
)
