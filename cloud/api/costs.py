"""``/api/v1/costs``: fuel and maintenance spend per vehicle, total cost of ownership, fuel
records, the tenant's fuel price, and fuel-saving recommendations with the litres they save."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.maintenance import Deleted, Moment, Number, require_vehicle
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import (
    PageQuery,
    SortKey,
    json_body,
    json_response,
    keyset,
    split_page,
)
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.maintenance.fuel import fuel_use

api = ResourceRoutes("costs")
routes = api.routes

VEHICLE_ID = {"description": "Vehicle UUID", "schema": {"type": "string", "format": "uuid"}}
RECORD_ID = {"description": "Fuel record UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_RANGE_DAYS = 92
MAX_VEHICLES = 500
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class CostSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fuel_price_per_l: Number = Field(ge=0, le=1000, description="Used where no fuel records exist")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")


class CostSettingsOut(CostSettings):
    version: int


@api.get(
    "/api/v1/costs/settings",
    summary="The tenant's fuel price and currency",
    response=CostSettingsOut,
    permission=Permission.COSTS_READ,
    errors=(404,),
)
async def get_settings(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            "SELECT fuel_price_per_l::float8 AS fuel_price_per_l, currency, version "
            "FROM cost_settings WHERE tenant_id = $1",
            principal_of(request).tenant_id,
        )
    if row is None:
        raise ProblemError(404, "no cost settings yet; PUT /api/v1/costs/settings")
    return json_response(CostSettingsOut.model_validate(dict(row)))


@api.route(
    "PUT",
    "/api/v1/costs/settings",
    summary="Set the tenant's fuel price and currency",
    response=CostSettingsOut,
    permission=Permission.COSTS_WRITE,
    body=CostSettings,
    errors=(400, 415, 422),
)
async def put_settings(request: web.Request) -> web.Response:
    body: CostSettings = await json_body(request, CostSettings)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            """INSERT INTO cost_settings (tenant_id, fuel_price_per_l, currency) VALUES ($1, $2, $3)
               ON CONFLICT (tenant_id) DO UPDATE SET fuel_price_per_l = EXCLUDED.fuel_price_per_l,
                   currency = EXCLUDED.currency, version = cost_settings.version + 1
               RETURNING fuel_price_per_l::float8 AS fuel_price_per_l, currency, version""",
            tenant,
            round(body.fuel_price_per_l, 3),
            body.currency,
        )
        settings = CostSettingsOut.model_validate(dict(row))
        await record_change(request, conn, "update", "cost_settings", tenant, after=settings)
    return json_response(settings)


# Fuel records -----------------------------------------------------------------------------


class FuelRecordCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: uuid.UUID
    filled_at: Moment
    litres: Number = Field(gt=0, le=100_000)
    cost: Number = Field(ge=0, le=10_000_000)


class FuelRecord(FuelRecordCreate):
    id: uuid.UUID
    created_at: datetime


class FuelRecordList(BaseModel):
    items: list[FuelRecord]
    next_cursor: str | None = None


class FuelRecordQuery(PageQuery):
    vehicle_id: uuid.UUID | None = None


FUEL_SORTS = {"filled_at": SortKey("filled_at", "f.filled_at", "timestamptz")}
_FUEL_COLUMNS = "f.id, f.vehicle_id, f.filled_at, f.litres, f.cost::float8 AS cost, f.created_at"


@api.get(
    "/api/v1/costs/fuel-records",
    summary="Fuel records, newest first",
    response=FuelRecordList,
    permission=Permission.COSTS_READ,
    query=FuelRecordQuery,
    errors=(400,),
)
async def list_fuel(request: web.Request) -> web.Response:
    query = query_model(request, FuelRecordQuery)
    args: list[Any] = [principal_of(request).tenant_id]
    conditions = ["f.tenant_id = $1"]
    if query.vehicle_id is not None:
        args.append(query.vehicle_id)
        conditions.append(f"f.vehicle_id = ${len(args)}")
    after, order = keyset(FUEL_SORTS, "-filled_at", query.cursor, "f.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    async with tenant_transaction(request) as conn:
        rows = await conn.fetch(
            f"SELECT {_FUEL_COLUMNS} FROM fuel_records f WHERE {' AND '.join(conditions)} "
            f"{order} LIMIT ${len(args)}",
            *args,
        )
    page, cursor = split_page(rows, query.limit, FUEL_SORTS, "-filled_at")
    return json_response(
        FuelRecordList(items=[FuelRecord.model_validate(dict(r)) for r in page], next_cursor=cursor)
    )


@api.post(
    "/api/v1/costs/fuel-records",
    summary="Record a fill-up",
    response=FuelRecord,
    permission=Permission.COSTS_WRITE,
    body=FuelRecordCreate,
    status=201,
    errors=(400, 415, 422),
)
async def create_fuel(request: web.Request) -> web.Response:
    body: FuelRecordCreate = await json_body(request, FuelRecordCreate)
    tenant = principal_of(request).tenant_id
    record_id = uuid.uuid4()
    async with tenant_transaction(request) as conn:
        await require_vehicle(conn, tenant, body.vehicle_id)
        row = await conn.fetchrow(
            f"""INSERT INTO fuel_records AS f (id, tenant_id, vehicle_id, filled_at, litres, cost)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_FUEL_COLUMNS}""",
            record_id,
            tenant,
            body.vehicle_id,
            body.filled_at,
            body.litres,
            round(body.cost, 2),
        )
        record = FuelRecord.model_validate(dict(row))
        await record_change(request, conn, "create", "fuel_record", record_id, after=record)
    return json_response(record, status=201)


@api.delete(
    "/api/v1/costs/fuel-records/{fuel_record_id}",
    summary="Delete a fuel record",
    response=Deleted,
    permission=Permission.COSTS_WRITE,
    path_params={"fuel_record_id": RECORD_ID},
    errors=(400, 404),
)
async def delete_fuel(request: web.Request) -> web.Response:
    record_id = path_uuid(request, "fuel_record_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"DELETE FROM fuel_records f WHERE f.tenant_id = $1 AND f.id = $2 "
            f"RETURNING {_FUEL_COLUMNS}",
            tenant,
            record_id,
        )
        if row is None:
            raise ProblemError(404, f"no fuel record {record_id}")
        await record_change(request, conn, "delete", "fuel_record", record_id, before=dict(row))
    return json_response(Deleted(deleted=True))


# Spend, TCO, recommendations --------------------------------------------------------------


class RangeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Moment | None = Field(None, description="Default: 30 days before until")
    until: Moment | None = Field(None, description="Default: now")
    vehicle_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _order(self) -> RangeQuery:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def bounds(self) -> tuple[datetime, datetime]:
        until = self.until or datetime.now(UTC)
        since = self.since or until - timedelta(days=30)
        if until - since > timedelta(days=MAX_RANGE_DAYS):
            raise ProblemError(400, f"a range spans at most {MAX_RANGE_DAYS} days")
        return since, until


class VehicleSpend(BaseModel):
    vehicle_id: uuid.UUID
    vehicle: str
    fuel_litres: float | None
    fuel_cost: float | None = Field(description="null when no fuel price is set or no fuel data")
    fuel_source: Literal["records", "fuel_rate", "maf", "none"]
    maintenance_cost: float
    total_cost: float = Field(description="The known parts: fuel (when known) and maintenance")


class SpendReport(BaseModel):
    since: datetime
    until: datetime
    currency: str | None
    items: list[VehicleSpend]
    fuel_cost: float = Field(description="Of the vehicles whose fuel cost is known")
    maintenance_cost: float
    total_cost: float


async def _price(conn: asyncpg.Connection, tenant: str) -> tuple[float | None, str | None]:
    row = await conn.fetchrow(
        "SELECT fuel_price_per_l::float8 AS price, currency FROM cost_settings "
        "WHERE tenant_id = $1",
        tenant,
    )
    return (row["price"], row["currency"]) if row else (None, None)


async def _vehicles(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID | None
) -> list[asyncpg.Record]:
    await require_vehicle(conn, tenant, vehicle_id, status=404)
    return await conn.fetch(
        """SELECT id, name, fuel_type, odometer_km, custom ->> 'acquisition_cost' AS acquisition
           FROM vehicles WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2)
           ORDER BY name, id LIMIT $3""",
        tenant,
        vehicle_id,
        MAX_VEHICLES,
    )


async def _spend(
    conn: asyncpg.Connection,
    tenant: str,
    vehicle: asyncpg.Record,
    since: datetime,
    until: datetime,
    price: float | None,
) -> VehicleSpend:
    records = await conn.fetchrow(
        """SELECT count(*) AS n, sum(litres) AS litres, sum(cost)::float8 AS cost
           FROM fuel_records WHERE tenant_id = $1 AND vehicle_id = $2
             AND filled_at >= $3 AND filled_at < $4""",
        tenant,
        vehicle["id"],
        since,
        until,
    )
    maintenance = await conn.fetchval(
        """SELECT coalesce(sum(total_cost), 0)::float8 FROM work_records
           WHERE tenant_id = $1 AND vehicle_id = $2 AND performed_at >= $3 AND performed_at < $4""",
        tenant,
        vehicle["id"],
        since,
        until,
    )
    if records["n"]:
        litres, cost, source = records["litres"], records["cost"], "records"
    else:
        use = await fuel_use(conn, vehicle["id"], vehicle["fuel_type"], since, until)
        source = use.source
        litres = None if source == "none" else round(use.litres, 2)
        cost = None if litres is None or price is None else round(litres * price, 2)
    return VehicleSpend(
        vehicle_id=vehicle["id"],
        vehicle=vehicle["name"],
        fuel_litres=litres,
        fuel_cost=cost,
        fuel_source=source,
        maintenance_cost=maintenance,
        total_cost=round((cost or 0.0) + maintenance, 2),
    )


def _sum(values: list[float | None]) -> float:
    """Return the sum of the known values (a null field says what is not known)."""
    return round(sum(v for v in values if v is not None), 2)


@api.get(
    "/api/v1/costs/spend",
    summary="Fuel and maintenance spend per vehicle over a range (default: 30 days)",
    response=SpendReport,
    permission=Permission.COSTS_READ,
    query=RangeQuery,
    errors=(400, 404),
)
async def spend(request: web.Request) -> web.Response:
    query = query_model(request, RangeQuery)
    since, until = query.bounds()
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        price, currency = await _price(conn, tenant)
        items = [
            await _spend(conn, tenant, v, since, until, price)
            for v in await _vehicles(conn, tenant, query.vehicle_id)
        ]
    return json_response(
        SpendReport(
            since=since,
            until=until,
            currency=currency,
            items=items,
            fuel_cost=_sum([i.fuel_cost for i in items]),
            maintenance_cost=round(sum(i.maintenance_cost for i in items), 2),
            total_cost=_sum([i.total_cost for i in items]),
        )
    )


class Ownership(BaseModel):
    vehicle_id: uuid.UUID
    vehicle: str
    acquisition_cost: float | None = Field(
        description="From the vehicle's custom field acquisition_cost, when set"
    )
    fuel_cost: float | None = Field(description="Fuel records, else fuel from signals x price")
    maintenance_cost: float
    total_cost: float = Field(description="The known parts")
    odometer_km: float | None
    cost_per_km: float | None


class OwnershipReport(BaseModel):
    currency: str | None
    items: list[Ownership]


class VehicleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: uuid.UUID | None = None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 1e12 else None


@api.get(
    "/api/v1/costs/ownership",
    summary="Total cost of ownership per vehicle: acquisition, fuel and maintenance to date",
    response=OwnershipReport,
    permission=Permission.COSTS_READ,
    query=VehicleQuery,
    errors=(400, 404),
)
async def ownership(request: web.Request) -> web.Response:
    query = query_model(request, VehicleQuery)
    tenant = principal_of(request).tenant_id
    items = []
    async with tenant_transaction(request) as conn:
        price, currency = await _price(conn, tenant)
        for v in await _vehicles(conn, tenant, query.vehicle_id):
            lifetime = await _spend(conn, tenant, v, EPOCH, datetime.now(UTC), price)
            acquisition = _number(v["acquisition"])
            total = _sum([acquisition, lifetime.fuel_cost, lifetime.maintenance_cost])
            odometer = v["odometer_km"]
            items.append(
                Ownership(
                    vehicle_id=v["id"],
                    vehicle=v["name"],
                    acquisition_cost=acquisition,
                    fuel_cost=lifetime.fuel_cost,
                    maintenance_cost=lifetime.maintenance_cost,
                    total_cost=total,
                    odometer_km=odometer,
                    cost_per_km=round(total / odometer, 4) if total and odometer else None,
                )
            )
    return json_response(OwnershipReport(currency=currency, items=items))


class Recommendation(BaseModel):
    vehicle_id: uuid.UUID
    vehicle: str
    kind: Literal["idling", "speed"]
    litres_saved: float
    cost_saved: float | None
    advice: str


class RecommendationList(BaseModel):
    since: datetime
    until: datetime
    method: str
    items: list[Recommendation] = Field(description="Largest saving first")


RECOMMENDATION_METHOD = (
    "one-minute buckets of fuel rate (or mass air flow) and speed; idling: the fuel of every "
    "idle minute after the first two of a stretch; speed: above 100 km/h, half the fuel "
    "scaled by 1 - (100/v)^2 (air drag grows with the square of speed)"
)


@api.get(
    "/api/v1/costs/recommendations",
    summary="Fuel-saving recommendations from idling and speed, with the litres they save",
    response=RecommendationList,
    permission=Permission.COSTS_READ,
    query=RangeQuery,
    errors=(400, 404),
)
async def recommendations(request: web.Request) -> web.Response:
    query = query_model(request, RangeQuery)
    since, until = query.bounds()
    tenant = principal_of(request).tenant_id
    items = []
    async with tenant_transaction(request) as conn:
        price, _ = await _price(conn, tenant)
        for v in await _vehicles(conn, tenant, query.vehicle_id):
            use = await fuel_use(conn, v["id"], v["fuel_type"], since, until)
            found = (
                (
                    "idling",
                    use.idle_saving_l,
                    f"{use.idle_hours:.1f} h idling; switch the engine off after 2 minutes "
                    "standing still",
                ),
                ("speed", use.speed_saving_l, "keep motorway speed at or under 100 km/h"),
            )
            for kind, litres, advice in found:
                if litres >= 0.1:
                    items.append(
                        Recommendation(
                            vehicle_id=v["id"],
                            vehicle=v["name"],
                            kind=kind,
                            litres_saved=round(litres, 2),
                            cost_saved=None if price is None else round(litres * price, 2),
                            advice=advice,
                        )
                    )
    items.sort(key=lambda r: -r.litres_saved)
    return json_response(
        RecommendationList(since=since, until=until, method=RECOMMENDATION_METHOD, items=items)
    )
