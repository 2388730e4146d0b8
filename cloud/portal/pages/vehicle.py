"""One vehicle's page (``/portal/vehicles/{vehicle_id}``): its profile, live signals, device,
trips and distance per day, alerts, trouble codes, diagnostic reports, maintenance due and its
anomaly-score history. Each section appears only for roles that may read it (None in the JSON
twin otherwise); another tenant's vehicle is not found (404). Roles that may change vehicles
edit the profile in a form (the API's change_vehicle, with the version the form was shown
with as its If-Match)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.devices import Device, fetch_device
from fleetlink.cloud.api.diagnostics import ReportPage, report_page
from fleetlink.cloud.api.inbox import InboxPage, InboxQuery, inbox_page
from fleetlink.cloud.api.maintenance import (
    AnomalyList,
    DtcList,
    DueEntry,
    DueQuery,
    anomaly_list,
    dtc_list,
    due_list,
)
from fleetlink.cloud.api.models import LatestSignals
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.rest import PageQuery, etag
from fleetlink.cloud.api.signals import latest_values
from fleetlink.cloud.api.trips import (
    DailyQuery,
    DailyTotals,
    TripPage,
    TripQuery,
    daily_totals,
    trip_page,
)
from fleetlink.cloud.api.vehicles import Vehicle, VehiclePatch, change_vehicle, fetch_vehicle
from fleetlink.cloud.app_keys import SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.charts import BarChart, bar_chart
from fleetlink.cloud.portal.form_page import answer_form, posted_fields
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page, twin_of
from fleetlink.cloud.portal.render import render_error
from fleetlink.cloud.portal.vehicle_form import edit_refusal, parsed, profile_fields
from fleetlink.cloud.records.vehicle_profile import FuelType, VehicleStatus

DAYS = 30
RECENT = 10
PATH = "/portal/vehicles/{vehicle_id}"
PROFILE_FIELDS = ("plate", "name", "fuel_type", "tank_capacity_l", "status", "tags")


class VehicleView(BaseModel):
    vehicle: Vehicle
    signals: LatestSignals | None
    device: Device | None
    daily: DailyTotals | None
    trips: TripPage | None
    alerts: InboxPage | None
    dtcs: DtcList | None
    reports: ReportPage | None
    maintenance: list[DueEntry] | None
    anomalies: AnomalyList | None
    may_change: bool


async def load(request: web.Request, conn: asyncpg.Connection) -> VehicleView:
    """Return the vehicle's sections the caller's role may read; raise ProblemError(404) for
    an id that is not one of the tenant's vehicles."""
    principal = principal_of(request)
    tenant = principal.tenant_id
    try:
        vehicle_id = uuid.UUID(request.match_info["vehicle_id"])
    except ValueError:
        raise ProblemError(404, "There is no such vehicle.") from None
    vehicle = await fetch_vehicle(conn, tenant, vehicle_id)
    can = principal.can
    today = datetime.now(UTC).date()
    days = {"from": today - timedelta(days=DAYS - 1), "to": today, "vehicle_id": vehicle_id}
    recent = PageQuery(limit=RECENT)
    signals = device = daily = trips = alerts = dtcs = reports = due = anomalies = None
    if can(Permission.SIGNALS_READ):
        future_s = request.app[SETTINGS].ingest_accept_future_s
        signals = await latest_values(conn, tenant, vehicle_id, future_s)
    if can(Permission.DEVICES_READ) and vehicle.device_id is not None:
        device = await fetch_device(conn, tenant, vehicle.device_id)
    if can(Permission.TRIPS_READ):
        daily = await daily_totals(conn, tenant, DailyQuery.model_validate(days))
        trip_query = TripQuery.model_validate({**days, "limit": RECENT})
        trips = await trip_page(conn, tenant, trip_query)
    if can(Permission.INBOX_READ):
        alert_query = InboxQuery(vehicle_id=vehicle_id, limit=RECENT)
        alerts = await inbox_page(conn, tenant, alert_query)
    if can(Permission.MAINTENANCE_READ):
        dtcs = await dtc_list(conn, tenant, vehicle_id, recent)
        due = await due_list(conn, tenant, DueQuery(status="all", vehicle_id=vehicle_id))
        anomalies = await anomaly_list(conn, tenant, vehicle_id, PageQuery(limit=50))
    if can(Permission.DIAGNOSTICS_READ):
        reports = await report_page(conn, tenant, vehicle_id, PageQuery(limit=5))
    return VehicleView(
        vehicle=vehicle,
        signals=signals,
        device=device,
        daily=daily,
        trips=trips,
        alerts=alerts,
        dtcs=dtcs,
        reports=reports,
        maintenance=due,
        anomalies=anomalies,
        may_change=can(Permission.VEHICLES_WRITE),
    )


def view(data: VehicleView) -> dict[str, object]:
    """Return the charts (distance per day, and anomaly scores over time when there are any)
    and the choices of the profile form."""
    charts: list[tuple[BarChart, int]] = []
    if data.daily is not None:
        points: list[tuple[str, float | None]] = [
            (d.day.strftime("%d %b"), d.distance_km) for d in data.daily.days
        ]
        charts.append((bar_chart("distance", "Distance", "km", points), 1))
    if data.anomalies is not None and data.anomalies.items:
        scored = [(a.ts.strftime("%d %b %H:%M"), a.score) for a in reversed(data.anomalies.items)]
        charts.append((bar_chart("anomaly", "Anomaly score", "score", scored), 2))
    return {
        "charts": charts,
        "title": data.vehicle.name,
        "fuel_types": get_args(FuelType),
        "statuses": get_args(VehicleStatus),
    }


page = Page(
    name="vehicle",
    path=PATH,
    title="Vehicle",
    permission=Permission.VEHICLES_READ,
    load=load,
    view=view,
)


async def edit_profile(request: web.Request) -> web.StreamResponse:
    """Change the vehicle's profile to the form's plate, name, fuel type, tank capacity,
    status and tags through the API's change_vehicle, if the vehicle is still at the form's
    ``version``; show the page with a notice, or the errors next to their fields with nothing
    changed (422; 409 for a plate in use or a vehicle changed since the form was shown)."""
    form = await posted_fields(request)
    try:
        vehicle_id = path_uuid(request, "vehicle_id")

        async def save(conn: asyncpg.Connection) -> dict[str, Any]:
            body = parsed(VehiclePatch, profile_fields(form, PROFILE_FIELDS))
            try:
                vehicle = await _apply(request, conn, vehicle_id, body, form.get("version", ""))
            except ProblemError as refused:
                raise edit_refusal(refused, "vehicle") from None
            return {"notice": f"The profile of {vehicle.name} is saved."}

        json_url = twin_of(PATH.format(vehicle_id=vehicle_id))
        return await answer_form(request, page, form, save, json_url=json_url)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)


async def _apply(
    request: web.Request,
    conn: asyncpg.Connection,
    vehicle_id: uuid.UUID,
    body: VehiclePatch,
    version: str,
) -> Vehicle:
    """Pass change_vehicle only the fields that differ from the stored profile, so saving an
    unchanged form neither bumps the version nor writes an audit entry."""
    current = await fetch_vehicle(conn, principal_of(request).tenant_id, vehicle_id)
    changed = {
        k: getattr(body, k)
        for k in body.model_fields_set
        if getattr(body, k) != getattr(current, k)
    }
    if_match = etag(int(version)) if version.isdigit() else ""
    return await change_vehicle(
        request, conn, vehicle_id, VehiclePatch.model_validate(changed), if_match
    )


routes = web.RouteTableDef()
routes.post(PATH + "/profile")(portal_guard(edit_profile, Permission.VEHICLES_WRITE))
