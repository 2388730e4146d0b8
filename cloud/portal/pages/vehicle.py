"""One vehicle's page (``/portal/vehicles/{vehicle_id}``): its profile, live signals, device,
trips and distance per day, alerts, trouble codes, diagnostic reports, maintenance due and its
anomaly-score history. Each section appears only for roles that may read it (None in the JSON
twin otherwise); another tenant's vehicle is not found (404)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

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
from fleetlink.cloud.api.rest import PageQuery
from fleetlink.cloud.api.signals import latest_values
from fleetlink.cloud.api.trips import (
    DailyQuery,
    DailyTotals,
    TripPage,
    TripQuery,
    daily_totals,
    trip_page,
)
from fleetlink.cloud.api.vehicles import Vehicle, fetch_vehicle
from fleetlink.cloud.app_keys import SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.charts import BarChart, bar_chart
from fleetlink.cloud.portal.page import Page

DAYS = 30
RECENT = 10


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
    )


def view(data: VehicleView) -> dict[str, object]:
    """Return the charts: distance per day, and anomaly scores over time when there are any."""
    charts: list[tuple[BarChart, int]] = []
    if data.daily is not None:
        points: list[tuple[str, float | None]] = [
            (d.day.strftime("%d %b"), d.distance_km) for d in data.daily.days
        ]
        charts.append((bar_chart("distance", "Distance", "km", points), 1))
    if data.anomalies is not None and data.anomalies.items:
        scored = [(a.ts.strftime("%d %b %H:%M"), a.score) for a in reversed(data.anomalies.items)]
        charts.append((bar_chart("anomaly", "Anomaly score", "score", scored), 2))
    return {"charts": charts, "title": data.vehicle.name}


page = Page(
    name="vehicle",
    path="/portal/vehicles/{vehicle_id}",
    title="Vehicle",
    permission=Permission.VEHICLES_READ,
    load=load,
    view=view,
)
