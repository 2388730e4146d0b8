"""The fleet overview (``/portal/``): key figures and charts of distance, fuel and alerts per
day over the last two weeks; each section shows only what the caller's role may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.inbox import DailyAlertCounts, DailyAlertQuery, daily_alert_counts
from fleetlink.cloud.api.trips import DailyQuery, DailyTotals, daily_totals
from fleetlink.cloud.api.vehicles import FacetQuery, VehicleFacets, vehicle_facet_counts
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.charts import BarChart, bar_chart
from fleetlink.cloud.portal.page import Page

DAYS = 14


class Overview(BaseModel):
    vehicles: VehicleFacets
    daily: DailyTotals | None
    alerts: DailyAlertCounts | None


async def load(request: web.Request, conn: asyncpg.Connection) -> Overview:
    """Return the overview's figures of the caller's tenant (sections the role may not read
    are None)."""
    principal = principal_of(request)
    tenant = principal.tenant_id
    today = datetime.now(UTC).date()
    days = {"from": today - timedelta(days=DAYS - 1), "to": today}
    daily = alerts = None
    if principal.can(Permission.TRIPS_READ):
        daily = await daily_totals(conn, tenant, DailyQuery.model_validate(days))
    if principal.can(Permission.INBOX_READ):
        alerts = await daily_alert_counts(conn, tenant, DailyAlertQuery.model_validate(days))
    return Overview(
        vehicles=await vehicle_facet_counts(conn, tenant, FacetQuery()),
        daily=daily,
        alerts=alerts,
    )


def charts(data: Overview) -> list[tuple[BarChart, int]]:
    """Return the overview's charts with the decimals their table shows."""
    found: list[tuple[BarChart, int]] = []
    if data.daily is not None:
        label = [(d.day.strftime("%d %b"), d) for d in data.daily.days]
        found.append(
            (bar_chart("distance", "Distance", "km", [(k, d.distance_km) for k, d in label]), 1)
        )
        found.append(
            (bar_chart("fuel", "Fuel used", "litres", [(k, d.fuel_used_l) for k, d in label]), 1)
        )
    if data.alerts is not None:
        points: list[tuple[str, float | None]] = [
            (d.day.strftime("%d %b"), float(d.info + d.warning + d.critical))
            for d in data.alerts.days
        ]
        found.append((bar_chart("alerts", "Alerts", "count", points), 0))
    return found


page = Page(
    name="overview",
    path="/portal/",
    title="Fleet overview",
    permission=Permission.VEHICLES_READ,
    load=load,
    nav="Overview",
    view=lambda data: {"charts": charts(data)},
)
