"""``/api/v1/vehicles/{id}/gaps``: what a vehicle's device had to give up, and why.

A gap record says which time range and signals are missing and how many samples; it comes
from the device (its outbox reached its byte cap, or batches overflowed memory while the
outbox refused writes) on the acked event path, so it is stored exactly once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import (
    PageQuery,
    SortKey,
    json_response,
    keyset,
    sort_pattern,
    split_page,
)
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import VEHICLE_ID, fetch_vehicle
from fleetlink.cloud.auth.permissions import Permission

api = ResourceRoutes("gaps")
routes = api.routes

SORTS = {
    "start": SortKey("start", "g.start_ts", "timestamptz"),
    "received_at": SortKey("received_at", "g.received_at", "timestamptz"),
}


class Gap(BaseModel):
    id: uuid.UUID
    device_id: str
    start: datetime
    end: datetime
    signals: str = Field(description="Signal ids as ranges, e.g. '5,10-14'")
    signals_cut: bool = Field(description="True if the signal list was too long and was cut")
    samples: int = Field(description="Samples given up")
    batches: int
    events: int = Field(description="Events given up (only when no telemetry was left)")
    reason: str = Field(description="outbox_cap or memory_overflow")
    received_at: datetime


class GapList(BaseModel):
    items: list[Gap]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


class GapQuery(PageQuery):
    sort: str = Field(
        "-start", pattern=sort_pattern(SORTS), description="Column, '-' for descending"
    )


@api.get(
    "/api/v1/vehicles/{vehicle_id}/gaps",
    summary="The gaps in a vehicle's data: time range, signals, samples given up, and why",
    response=GapList,
    permission=Permission.VEHICLES_READ,
    path_params={"vehicle_id": VEHICLE_ID},
    query=GapQuery,
    errors=(400, 404),
)
async def list_gaps(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    query = query_model(request, GapQuery)
    tenant = principal_of(request).tenant_id
    args: list[Any] = [tenant, vehicle_id]
    conditions = ["g.tenant_id = $1", "g.vehicle_id = $2"]
    after, order = keyset(SORTS, query.sort, query.cursor, "g.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    sql = (
        "SELECT g.id, g.device_id, g.start_ts AS start, g.end_ts AS end, g.signals, "
        "g.signals_cut, g.samples, g.batches, g.events, g.reason, g.received_at "
        f"FROM gaps g WHERE {' AND '.join(conditions)} {order} LIMIT ${len(args)}"
    )
    async with tenant_transaction(request) as conn:
        await fetch_vehicle(conn, tenant, vehicle_id)
        rows = await conn.fetch(sql, *args)
    shown, cursor = split_page(rows, query.limit, SORTS, query.sort)
    return json_response(GapList(items=[Gap(**dict(r)) for r in shown], next_cursor=cursor))
