"""``/api/v1/trips`` and totals per vehicle and per driver.

Trips are recomputed per (vehicle, UTC day) whenever data for that day lands, late or not; a
trip belongs to the driver assigned to its vehicle when it started (driver_assignments).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.day_range import DayRange
from fleetlink.cloud.api.drivers import DRIVER_ID
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import MAX_PAGE, SortKey, json_response, keyset, split_page
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import VEHICLE_ID
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.scoring.activity import DRIVER_OF_TRIP_SQL

api = ResourceRoutes("trips")
routes = api.routes

TRIP_ID = {"description": "Trip UUID", "schema": {"type": "string", "format": "uuid"}}
_NEWEST_FIRST = "-started_at"
_SORTS = {"started_at": SortKey("started_at", "t.started_at", "timestamptz")}
DRIVER_OF_TRIP = DRIVER_OF_TRIP_SQL
TRIP_COLUMNS = (
    "t.id, t.vehicle_id, a.driver_id, t.day, t.started_at, t.ended_at, t.duration_s, "
    "t.distance_km, t.idle_s, t.max_speed_kmh, t.fuel_used_l, t.engine_hours, t.start_lat, "
    "t.start_lon, t.end_lat, t.end_lon"
)


class Trip(BaseModel):
    id: uuid.UUID
    vehicle_id: uuid.UUID
    driver_id: uuid.UUID | None = Field(description="Assigned to the vehicle at the start")
    day: date
    started_at: datetime
    ended_at: datetime
    duration_s: float
    distance_km: float
    idle_s: float
    max_speed_kmh: float
    fuel_used_l: float | None
    engine_hours: float
    start_lat: float | None
    start_lon: float | None
    end_lat: float | None
    end_lon: float | None


class TripEvent(BaseModel):
    id: uuid.UUID
    ts: datetime
    type: str
    source: str
    event_id: uuid.UUID | None
    duration_s: float
    magnitude: float | None
    data: dict[str, Any]


class TripDetail(Trip):
    events: list[TripEvent]


class TripPage(BaseModel):
    items: list[Trip]
    next_cursor: str | None = None


class TripQuery(DayRange):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vehicle_id: uuid.UUID | None = None
    driver_id: uuid.UUID | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"Items per page (1-{MAX_PAGE})")
    cursor: str | None = Field(None, max_length=500, description="next_cursor of the last page")


class Totals(BaseModel):
    from_: date = Field(alias="from")
    to: date
    trips: int
    distance_km: float
    driving_s: float
    idle_s: float
    max_speed_kmh: float | None
    fuel_used_l: float | None
    engine_hours: float

    model_config = ConfigDict(populate_by_name=True)


def trip_filters(
    tenant: str, first: date, end: date, vehicle: uuid.UUID | None, driver: uuid.UUID | None
) -> tuple[list[str], list[Any]]:
    """Return the WHERE conditions and arguments of trips in [first, end) of a vehicle or
    driver (``t`` the trips, ``a`` their driver assignment)."""
    args: list[Any] = [tenant, first, end]
    conditions = ["t.tenant_id = $1", "t.day >= $2", "t.day < $3"]
    if vehicle is not None:
        args.append(vehicle)
        conditions.append(f"t.vehicle_id = ${len(args)}")
    if driver is not None:
        args.append(driver)
        conditions.append(f"a.driver_id = ${len(args)}")
    return conditions, args


@api.get(
    "/api/v1/trips",
    summary="Trips, newest first, of a vehicle, a driver or the whole fleet in a range of days",
    response=TripPage,
    permission=Permission.TRIPS_READ,
    query=TripQuery,
    errors=(400,),
)
async def list_trips(request: web.Request) -> web.Response:
    query = query_model(request, TripQuery)
    async with tenant_transaction(request) as conn:
        page = await trip_page(conn, principal_of(request).tenant_id, query)
    return json_response(page)


async def trip_page(conn: asyncpg.Connection, tenant: str, query: TripQuery) -> TripPage:
    """Return the page of ``tenant``'s trips, newest first, that ``query`` asks for; raise
    ProblemError(400) for a cursor that does not fit."""
    first, end = query.bounds()
    conditions, args = trip_filters(tenant, first, end, query.vehicle_id, query.driver_id)
    after, order = keyset(_SORTS, _NEWEST_FIRST, query.cursor, "t.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    sql = (
        f"SELECT {TRIP_COLUMNS} FROM trips t {DRIVER_OF_TRIP} "
        f"WHERE {' AND '.join(conditions)} {order} LIMIT ${len(args)}"
    )
    rows = await conn.fetch(sql, *args)
    shown, cursor = split_page(rows, query.limit, _SORTS, _NEWEST_FIRST)
    return TripPage(items=[Trip.model_validate(dict(r)) for r in shown], next_cursor=cursor)


class DailyTotal(BaseModel):
    day: date
    trips: int
    distance_km: float
    fuel_used_l: float | None = Field(description="Null when no trip of the day knows its fuel")


class DailyTotals(BaseModel):
    from_: date = Field(alias="from")
    to: date
    days: list[DailyTotal] = Field(description="Every day of the range, oldest first")
    model_config = ConfigDict(populate_by_name=True)


class DailyQuery(DayRange):
    vehicle_id: uuid.UUID | None = None


async def daily_totals(conn: asyncpg.Connection, tenant: str, query: DailyQuery) -> DailyTotals:
    """Return trips, distance and fuel per UTC day of ``query``'s range (days without trips
    included as zeros), of one vehicle or the whole fleet."""
    first, end = query.bounds()
    conditions, args = trip_filters(tenant, first, end, query.vehicle_id, None)
    rows = await conn.fetch(
        f"""SELECT t.day, count(*) AS trips, coalesce(sum(t.distance_km), 0) AS distance_km,
                   sum(t.fuel_used_l) AS fuel_used_l
            FROM trips t WHERE {" AND ".join(conditions)} GROUP BY t.day""",
        *args,
    )
    by_day = {r["day"]: r for r in rows}
    first_day, last_day = query.days()
    days = []
    for n in range((last_day - first_day).days + 1):
        day = first_day + timedelta(days=n)
        row = by_day.get(day)
        days.append(
            DailyTotal(
                day=day,
                trips=row["trips"] if row else 0,
                distance_km=row["distance_km"] if row else 0.0,
                fuel_used_l=row["fuel_used_l"] if row else None,
            )
        )
    return DailyTotals(from_=first_day, to=last_day, days=days)


@api.get(
    "/api/v1/trips/daily",
    summary="Trips, distance and fuel per day of a range, of one vehicle or the whole fleet",
    response=DailyTotals,
    permission=Permission.TRIPS_READ,
    query=DailyQuery,
    errors=(400,),
)
async def get_daily_totals(request: web.Request) -> web.Response:
    query = query_model(request, DailyQuery)
    async with tenant_transaction(request) as conn:
        totals = await daily_totals(conn, principal_of(request).tenant_id, query)
    return web.json_response(text=totals.model_dump_json(by_alias=True))


@api.get(
    "/api/v1/trips/{trip_id}",
    summary="One trip with its driving events (device-reported and derived from speed)",
    response=TripDetail,
    permission=Permission.TRIPS_READ,
    path_params={"trip_id": TRIP_ID},
    errors=(400, 404),
)
async def get_trip(request: web.Request) -> web.Response:
    trip_id = path_uuid(request, "trip_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"SELECT {TRIP_COLUMNS} FROM trips t {DRIVER_OF_TRIP} "
            "WHERE t.tenant_id = $1 AND t.id = $2",
            tenant,
            trip_id,
        )
        if row is None:
            raise ProblemError(404, f"no trip {trip_id}")
        events = await conn.fetch(
            "SELECT id, ts, type, source, event_id, duration_s, magnitude, data "
            "FROM driving_events WHERE tenant_id = $1 AND trip_id = $2 ORDER BY ts, id",
            tenant,
            trip_id,
        )
    detail = TripDetail(**dict(row), events=[TripEvent.model_validate(dict(e)) for e in events])
    return json_response(detail)


async def _totals(
    conn: asyncpg.Connection,
    tenant: str,
    query: DayRange,
    vehicle: uuid.UUID | None,
    driver: uuid.UUID | None,
) -> Totals:
    first, end = query.bounds()
    conditions, args = trip_filters(tenant, first, end, vehicle, driver)
    row = await conn.fetchrow(
        f"""SELECT count(*) AS trips, coalesce(sum(t.distance_km), 0) AS distance_km,
                   coalesce(sum(t.duration_s), 0) AS driving_s,
                   coalesce(sum(t.idle_s), 0) AS idle_s, max(t.max_speed_kmh) AS max_speed_kmh,
                   sum(t.fuel_used_l) AS fuel_used_l,
                   coalesce(sum(t.engine_hours), 0) AS engine_hours
            FROM trips t {DRIVER_OF_TRIP} WHERE {" AND ".join(conditions)}""",
        *args,
    )
    first, last = query.days()
    return Totals(from_=first, to=last, **dict(row))


@api.get(
    "/api/v1/vehicles/{vehicle_id}/totals",
    summary="A vehicle's trips, distance, driving and idle time, fuel and engine hours",
    response=Totals,
    permission=Permission.TRIPS_READ,
    query=DayRange,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def vehicle_totals(request: web.Request) -> web.Response:
    vehicle = path_uuid(request, "vehicle_id")
    query = query_model(request, DayRange)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        if await conn.fetchval("SELECT 1 FROM vehicles WHERE id = $1", vehicle) is None:
            raise ProblemError(404, f"no vehicle {vehicle}")
        totals = await _totals(conn, tenant, query, vehicle, None)
    return web.json_response(text=totals.model_dump_json(by_alias=True))


@api.get(
    "/api/v1/drivers/{driver_id}/totals",
    summary="A driver's trips and totals, through the vehicles assigned to them at the time",
    response=Totals,
    permission=Permission.TRIPS_READ,
    query=DayRange,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404),
)
async def driver_totals(request: web.Request) -> web.Response:
    driver = path_uuid(request, "driver_id")
    query = query_model(request, DayRange)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        if await conn.fetchval("SELECT 1 FROM drivers WHERE id = $1", driver) is None:
            raise ProblemError(404, f"no driver {driver}")
        totals = await _totals(conn, tenant, query, None, driver)
    return web.json_response(text=totals.model_dump_json(by_alias=True))
