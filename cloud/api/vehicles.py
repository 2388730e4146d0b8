"""``/api/v1/vehicles``: the tenant's vehicle profiles (list, search, facets, add, edit, retire)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.fleets import require_fleet
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import (
    ETAG_HEADER,
    PageQuery,
    SortKey,
    check_if_match,
    json_body,
    json_response,
    keyset,
    sort_pattern,
    split_page,
)
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import WEBHOOK_DISPATCHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.notify.webhooks import enqueue
from fleetlink.cloud.records.vehicle_profile import (
    FuelType,
    VehicleStatus,
    check_plate,
    check_tags,
    check_vin,
    vin_profile,
)

api = ResourceRoutes("vehicles")
routes = api.routes

VEHICLE_ID = {"description": "Vehicle UUID", "schema": {"type": "string", "format": "uuid"}}

SORTS = {
    "name": SortKey("name", "v.name", "text"),
    "plate": SortKey("plate", "coalesce(v.plate, '')", "text"),
    "year": SortKey("year", "coalesce(v.year, 0)", "int"),
    "created_at": SortKey("created_at", "v.created_at", "timestamptz"),
    "updated_at": SortKey("updated_at", "v.updated_at", "timestamptz"),
}

_COLUMNS = (
    "v.id, v.name, v.plate, v.vin, v.make, v.model, v.year, v.fuel_type, v.tank_capacity_l, "
    "v.odometer_km, v.engine_hours, v.status, v.tags, v.custom, v.fleet_id, v.created_at, "
    "v.updated_at, v.version, a.device_id"
)
_FROM = (
    "FROM vehicles v LEFT JOIN device_assignments a ON a.vehicle_id = v.id "
    "AND a.valid_to IS NULL AND a.tenant_id = v.tenant_id"
)
CustomFields = dict[
    Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], str | int | float | bool | None
]


class Vehicle(BaseModel):
    id: uuid.UUID
    name: str
    plate: str | None = None
    vin: str | None = None
    make: str | None = None
    model: str | None = None
    year: int | None = None
    fuel_type: FuelType | None = None
    tank_capacity_l: float | None = None
    odometer_km: float | None = None
    engine_hours: float | None = None
    status: VehicleStatus
    tags: list[str]
    custom: dict[str, Any]
    fleet_id: uuid.UUID | None = None
    device_id: str | None = Field(None, description="The device currently installed, if any")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Changes with every edit; the ETag")


class VehicleList(BaseModel):
    items: list[Vehicle]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    plate: str | None = None
    vin: str | None = None
    make: str | None = Field(None, max_length=100)
    model: str | None = Field(None, max_length=100)
    year: int | None = Field(None, ge=1900, le=2100)
    fuel_type: FuelType | None = None
    tank_capacity_l: float | None = Field(None, gt=0, le=100_000)
    odometer_km: float | None = Field(None, ge=0, le=10_000_000)
    engine_hours: float | None = Field(None, ge=0, le=1_000_000)
    tags: list[str] | None = None
    custom: CustomFields | None = None
    fleet_id: uuid.UUID | None = None

    @field_validator("plate")
    @classmethod
    def _plate(cls, value: str | None) -> str | None:
        return None if value is None else check_plate(value)

    @field_validator("vin")
    @classmethod
    def _vin(cls, value: str | None) -> str | None:
        return None if value is None else check_vin(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_tags(value)


class VehicleCreate(_Fields):
    """A new vehicle; the name defaults to the plate, else make and model. A VIN fills make,
    model and year where they are not given (decoded offline)."""

    status: VehicleStatus = "active"


class VehiclePatch(_Fields):
    """Only the fields present change; ``null`` clears a field (the name cannot be cleared)."""

    status: VehicleStatus | None = None


class VehicleQuery(PageQuery):
    q: str | None = Field(
        None,
        max_length=200,
        description="Words or prefixes of plate, VIN, name, make, model or tags",
    )
    status: VehicleStatus | None = None
    make: str | None = Field(None, max_length=100)
    fleet_id: uuid.UUID | None = None
    tag: str | None = Field(None, max_length=64)
    sort: str = Field("name", pattern=sort_pattern(SORTS), description="Column, '-' for descending")


class FacetQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(None, max_length=200)
    status: VehicleStatus | None = None
    make: str | None = Field(None, max_length=100)
    fleet_id: uuid.UUID | None = None
    tag: str | None = Field(None, max_length=64)


class FacetCount(BaseModel):
    value: str | None
    count: int


class VehicleFacets(BaseModel):
    total: int
    status: list[FacetCount]
    make: list[FacetCount]
    fleet: list[FacetCount]


def prefix_query(text: str) -> str | None:
    """Return a to_tsquery text matching every word of ``text`` as a prefix, or None."""
    words = [re.sub(r"[^\w]", "", w.lower()) for w in text.split()]
    words = [w for w in words if w]
    return " & ".join(f"{w}:*" for w in words[:10]) or None


def _filters(query: VehicleQuery | FacetQuery, args: list[Any]) -> list[str]:
    conditions = []
    if query.q and (tsquery := prefix_query(query.q)):
        args.append(tsquery)
        conditions.append(f"v.search @@ to_tsquery('simple', ${len(args)})")
    for column, value in (
        ("status", query.status),
        ("make", query.make),
        ("fleet_id", query.fleet_id),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"v.{column} = ${len(args)}")
    if query.tag is not None:
        args.append(query.tag)
        conditions.append(f"${len(args)} = ANY (v.tags)")
    return conditions


def _vehicle(row: asyncpg.Record) -> Vehicle:
    return Vehicle.model_validate(dict(row))


async def fetch_vehicle(conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID) -> Vehicle:
    """Return the tenant's vehicle; raise ProblemError(404) if the tenant has none with that id."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE v.tenant_id = $1 AND v.id = $2 LIMIT 1",
        tenant,
        vehicle_id,
    )
    if row is None:
        raise ProblemError(404, f"no vehicle {vehicle_id}")
    return _vehicle(row)


def _unique_violation(exc: asyncpg.UniqueViolationError) -> ProblemError:
    field = "vin" if "vin" in (exc.constraint_name or "") else "plate"
    return ProblemError(
        409,
        f"another vehicle of this tenant has this {field}",
        errors=[{"field": field, "message": "already in use"}],
    )


@api.get(
    "/api/v1/vehicles",
    summary="List, filter, sort and search the vehicles",
    response=VehicleList,
    permission=Permission.VEHICLES_READ,
    query=VehicleQuery,
    errors=(400,),
)
async def list_vehicles(request: web.Request) -> web.Response:
    query = query_model(request, VehicleQuery)
    async with tenant_transaction(request) as conn:
        page = await vehicle_list(conn, principal_of(request).tenant_id, query)
    return json_response(page)


async def vehicle_list(conn: asyncpg.Connection, tenant: str, query: VehicleQuery) -> VehicleList:
    """Return the page of ``tenant``'s vehicles that ``query`` asks for (filters, sort, cursor);
    raise ProblemError(400) for a cursor that does not fit the sort."""
    args: list[Any] = [tenant]
    conditions = ["v.tenant_id = $1", *_filters(query, args)]
    after, order = keyset(SORTS, query.sort, query.cursor, "v.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(conditions)} {order} LIMIT ${len(args)}"
    rows = await conn.fetch(sql, *args)
    shown, cursor = split_page(rows, query.limit, SORTS, query.sort)
    return VehicleList(items=[_vehicle(r) for r in shown], next_cursor=cursor)


@api.get(
    "/api/v1/vehicles/facets",
    summary="How many vehicles match, counted by status, make and fleet",
    response=VehicleFacets,
    permission=Permission.VEHICLES_READ,
    query=FacetQuery,
    errors=(400,),
)
async def vehicle_facets(request: web.Request) -> web.Response:
    query = query_model(request, FacetQuery)
    async with tenant_transaction(request) as conn:
        facets = await vehicle_facet_counts(conn, principal_of(request).tenant_id, query)
    return json_response(facets)


async def vehicle_facet_counts(
    conn: asyncpg.Connection, tenant: str, query: FacetQuery
) -> VehicleFacets:
    """Return how many of ``tenant``'s vehicles match ``query``, by status, make and fleet."""
    args: list[Any] = [tenant]
    where = " AND ".join(["v.tenant_id = $1", *_filters(query, args)])
    sql = f"""
        WITH matched AS (SELECT v.status, v.make, v.fleet_id FROM vehicles v WHERE {where})
        SELECT 'total' AS facet, NULL AS value, count(*) AS count FROM matched
        UNION ALL SELECT 'status', status, count(*) FROM matched GROUP BY status
        UNION ALL SELECT 'make', make, count(*) FROM matched GROUP BY make
        UNION ALL SELECT 'fleet', fleet_id::text, count(*) FROM matched GROUP BY fleet_id
    """
    rows = await conn.fetch(sql, *args)
    facets: dict[str, list[FacetCount]] = {"status": [], "make": [], "fleet": []}
    total = 0
    for r in rows:
        if r["facet"] == "total":
            total = r["count"]
        else:
            facets[r["facet"]].append(FacetCount(value=r["value"], count=r["count"]))
    for counts in facets.values():
        counts.sort(key=lambda c: (-c.count, c.value or ""))
    return VehicleFacets(total=total, **facets)


@api.get(
    "/api/v1/vehicles/{vehicle_id}",
    summary="One vehicle's profile",
    response=Vehicle,
    permission=Permission.VEHICLES_READ,
    path_params={"vehicle_id": VEHICLE_ID},
    headers=ETAG_HEADER,
    errors=(400, 404),
)
async def get_vehicle(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    async with tenant_transaction(request) as conn:
        vehicle = await fetch_vehicle(conn, principal_of(request).tenant_id, vehicle_id)
    return json_response(vehicle, version=vehicle.version)


def vin_completed(fields: dict[str, Any]) -> dict[str, Any]:
    """Fill make, model and year from the VIN where not given, and the default name."""
    if fields.get("vin"):
        profile = vin_profile(fields["vin"])
        fields["vin"] = profile.vin
        for name in ("make", "model", "year"):
            if fields.get(name) is None and getattr(profile, name) is not None:
                fields[name] = getattr(profile, name)
    return fields


def default_name(fields: dict[str, Any]) -> str | None:
    if fields.get("plate"):
        return str(fields["plate"])
    words = [str(fields[k]) for k in ("make", "model") if fields.get(k)]
    return " ".join(words) or None


@api.post(
    "/api/v1/vehicles",
    summary="Add a vehicle",
    response=Vehicle,
    permission=Permission.VEHICLES_WRITE,
    body=VehicleCreate,
    status=201,
    headers=ETAG_HEADER,
    errors=(400, 409, 415, 422),
)
async def create_vehicle(request: web.Request) -> web.Response:
    body: VehicleCreate = await json_body(request, VehicleCreate)
    async with tenant_transaction(request) as conn:
        vehicle = await add_vehicle(request, conn, body)
    request.app[WEBHOOK_DISPATCHER].wake()
    response = json_response(vehicle, status=201, version=vehicle.version)
    response.headers["Location"] = f"/api/v1/vehicles/{vehicle.id}"
    return response


async def add_vehicle(
    request: web.Request, conn: asyncpg.Connection, body: VehicleCreate
) -> Vehicle:
    """Store ``body`` as a new vehicle of the caller's tenant (make, model and year decoded
    from its VIN where not given, the name defaulted), audit it, queue its
    ``vehicle.registered`` webhooks and return it; the caller wakes WEBHOOK_DISPATCHER once the
    transaction is committed.

    Raises ProblemError 422 (no name, plate, or make and model; an unknown fleet) or 409 (the
    plate or VIN is another vehicle's), with ``errors`` naming the field.
    """
    principal = principal_of(request)
    fields = vin_completed(body.model_dump(exclude_none=True))
    fields.setdefault("name", default_name(fields))
    if not fields["name"]:
        raise ProblemError(
            422,
            "give a name, a plate, or a make and model",
            errors=[{"field": "name", "message": "is required without plate, make or model"}],
        )
    vehicle_id = uuid.uuid4()
    columns = ["id", "tenant_id", *fields]
    values = [vehicle_id, principal.tenant_id, *fields.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await require_fleet(conn, principal.tenant_id, body.fleet_id)
    try:
        await conn.execute(
            f"INSERT INTO vehicles ({', '.join(columns)}) VALUES ({placeholders})",
            *values,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _unique_violation(exc) from None
    vehicle = await fetch_vehicle(conn, principal.tenant_id, vehicle_id)
    await record_change(
        request,
        conn,
        "create",
        "vehicle",
        vehicle_id,
        after=vehicle,
    )
    await enqueue(conn, principal.tenant_id, "vehicle.registered", vehicle.model_dump(mode="json"))
    return vehicle


@api.patch(
    "/api/v1/vehicles/{vehicle_id}",
    if_match=True,
    summary="Change a vehicle's profile (send If-Match with its ETag)",
    response=Vehicle,
    permission=Permission.VEHICLES_WRITE,
    body=VehiclePatch,
    path_params={"vehicle_id": VEHICLE_ID},
    headers=ETAG_HEADER,
    errors=(400, 404, 409, 412, 415, 422, 428),
)
async def patch_vehicle(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    body: VehiclePatch = await json_body(request, VehiclePatch)
    if_match = request.headers.get("If-Match", "")
    async with tenant_transaction(request) as conn:
        after = await change_vehicle(request, conn, vehicle_id, body, if_match)
    return json_response(after, version=after.version)


async def change_vehicle(
    request: web.Request,
    conn: asyncpg.Connection,
    vehicle_id: uuid.UUID,
    body: VehiclePatch,
    if_match: str,
) -> Vehicle:
    """Apply the fields set in ``body`` to the tenant's vehicle if ``if_match`` (an If-Match
    value) names its current version; audit the change and return the vehicle.

    Raises ProblemError 422 (a name or status set to null; an unknown fleet), 404 (no such
    vehicle), 428 (empty ``if_match``), 412 (the vehicle changed since that version) or 409
    (the plate or VIN is another vehicle's).
    """
    principal = principal_of(request)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if "name" in changes and changes["name"] is None:
        raise ProblemError(
            422,
            "a vehicle's name cannot be cleared",
            errors=[{"field": "name", "message": "cannot be null"}],
        )
    if "status" in changes and changes["status"] is None:
        raise ProblemError(
            422, "status cannot be null", errors=[{"field": "status", "message": "cannot be null"}]
        )
    before = await fetch_vehicle(conn, principal.tenant_id, vehicle_id)
    check_if_match(if_match, before.version)
    if changes.get("vin"):
        changes["vin"] = vin_profile(changes["vin"]).vin
    if "fleet_id" in changes:
        await require_fleet(conn, principal.tenant_id, changes["fleet_id"])
    if changes:
        sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=3))
        try:
            await conn.execute(
                f"UPDATE vehicles SET {sets}, version = version + 1, updated_at = now() "
                "WHERE tenant_id = $1 AND id = $2",
                principal.tenant_id,
                vehicle_id,
                *changes.values(),
            )
        except asyncpg.UniqueViolationError as exc:
            raise _unique_violation(exc) from None
    after = await fetch_vehicle(conn, principal.tenant_id, vehicle_id)
    if changes:
        await record_change(
            request,
            conn,
            "update",
            "vehicle",
            vehicle_id,
            before=before,
            after=after,
        )
    return after


@api.delete(
    "/api/v1/vehicles/{vehicle_id}",
    summary="Retire a vehicle: it stays with its history, its device is taken out",
    response=Vehicle,
    permission=Permission.VEHICLES_WRITE,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def retire_vehicle(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        before = await fetch_vehicle(conn, principal.tenant_id, vehicle_id)
        if before.status != "retired":
            await conn.execute(
                "UPDATE vehicles SET status = 'retired', version = version + 1, updated_at = now() "
                "WHERE tenant_id = $1 AND id = $2",
                principal.tenant_id,
                vehicle_id,
            )
            # An installation planned for later is cancelled; a running one ends now.
            await conn.execute(
                "DELETE FROM device_assignments WHERE tenant_id = $1 AND vehicle_id = $2 "
                "AND valid_to IS NULL AND valid_from >= now()",
                principal.tenant_id,
                vehicle_id,
            )
            await conn.execute(
                "UPDATE device_assignments SET valid_to = now() "
                "WHERE tenant_id = $1 AND vehicle_id = $2 AND valid_to IS NULL",
                principal.tenant_id,
                vehicle_id,
            )
        after = await fetch_vehicle(conn, principal.tenant_id, vehicle_id)
        if before.status != "retired":
            await record_change(
                request,
                conn,
                "retire",
                "vehicle",
                vehicle_id,
                before=before,
                after=after,
            )
    return json_response(after, version=after.version)
