"""``/api/v1/vehicles/{vehicle_id}/events``: everything the vehicle's devices reported as an
event (in-cab alerts and their escalations and acknowledgements, anomalies, trouble codes,
trips, gaps), newest first, filtered by type, severity and time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.maintenance import Moment, require_vehicle
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import PageQuery, SortKey, json_response, keyset, split_page
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import VEHICLE_ID
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.records.device_events import EventFilter

api = ResourceRoutes("vehicle events")
routes = api.routes

Severity = Literal["info", "warning", "critical"]
_SORTS = {"ts": SortKey("ts", "e.ts", "timestamptz")}
_NEWEST_FIRST = "-ts"


class VehicleEvent(BaseModel):
    id: uuid.UUID = Field(description="The event's id, given by the device")
    ts: datetime = Field(description="When it happened (the device's clock)")
    type: str = Field(description="alert, coaching, vehicle_alert, alert_ack, anomaly, ...")
    severity: Severity
    device_id: str
    data: dict[str, Any]


class VehicleEventPage(BaseModel):
    items: list[VehicleEvent] = Field(description="Newest first")
    next_cursor: str | None = None


class VehicleEventQuery(PageQuery):
    type: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,63}(,[a-z][a-z0-9_]{0,63}){0,19}$",
        description="Only these types, comma-separated (alert,coaching)",
    )
    severity: Severity | None = None
    since: Moment | None = Field(None, description="From (inclusive), ISO 8601 with time zone")
    until: Moment | None = Field(None, description="To (exclusive), ISO 8601 with time zone")

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _order(self) -> VehicleEventQuery:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


@api.get(
    "/api/v1/vehicles/{vehicle_id}/events",
    summary="The vehicle's events (alerts, escalations, anomalies, trouble codes), newest first",
    response=VehicleEventPage,
    permission=Permission.VEHICLES_READ,
    query=VehicleEventQuery,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def list_vehicle_events(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    query = query_model(request, VehicleEventQuery)
    tenant = principal_of(request).tenant_id
    args: list[Any] = []
    where = EventFilter(
        tenant,
        vehicle_id,
        types=query.type.split(",") if query.type else None,
        severity=query.severity,
        since=query.since,
        until=query.until,
    ).where(args)
    after, order = keyset(_SORTS, _NEWEST_FIRST, query.cursor, "e.id", args)
    args.append(query.limit + 1)
    async with tenant_transaction(request) as conn:
        await require_vehicle(conn, tenant, vehicle_id, status=404)
        rows = await conn.fetch(
            f"""SELECT e.id, e.ts, e.type, e.severity, e.device_id, e.data FROM events e
                WHERE {where} {"AND " + after if after else ""} {order} LIMIT ${len(args)}""",
            *args,
        )
    page, cursor = split_page(rows, query.limit, _SORTS, _NEWEST_FIRST)
    items = [VehicleEvent.model_validate(dict(r)) for r in page]
    return json_response(VehicleEventPage(items=items, next_cursor=cursor))
