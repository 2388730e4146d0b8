"""``/api/v1/drivers``: the tenant's drivers, their vehicles, and their personal data rights.

Licence numbers and phone numbers are stored encrypted (AES-GCM, the key ring of
``FLEETLINK_FIELD_KEYS``) and shown only to roles with ``drivers:personal``. The audit log
records drivers without their personal fields, so erasing a driver leaves none behind.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

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
from fleetlink.cloud.api.vehicles import prefix_query
from fleetlink.cloud.app_keys import FIELD_CIPHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.records.field_crypto import FieldCipher
from fleetlink.cloud.records.vehicle_profile import check_tags

api = ResourceRoutes("drivers")
routes = api.routes

DRIVER_ID = {"description": "Driver UUID", "schema": {"type": "string", "format": "uuid"}}
DriverStatus = Literal["active", "retired"]
PERSONAL = ("licence_number", "phone")
SORTS = {
    "name": SortKey("name", "d.name", "text"),
    "employee_number": SortKey("employee_number", "coalesce(d.employee_number, '')", "text"),
    "created_at": SortKey("created_at", "d.created_at", "timestamptz"),
}
_COLUMNS = (
    "d.id, d.name, d.employee_number, d.email, d.licence_number_enc, d.phone_enc, d.tags, "
    "d.fleet_id, d.status, d.erased_at, d.created_at, d.updated_at, d.version, a.vehicle_id"
)
_FROM = (
    "FROM drivers d LEFT JOIN driver_assignments a ON a.driver_id = d.id "
    "AND a.valid_to IS NULL AND a.tenant_id = d.tenant_id"
)


class Driver(BaseModel):
    id: uuid.UUID
    name: str
    employee_number: str | None
    email: str | None
    licence_number: str | None = Field(
        description="Shown to roles with drivers:personal; otherwise null"
    )
    phone: str | None = Field(description="Shown to roles with drivers:personal; otherwise null")
    tags: list[str]
    fleet_id: uuid.UUID | None
    status: DriverStatus
    vehicle_id: uuid.UUID | None = Field(description="The vehicle assigned now, if any")
    erased_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class DriverList(BaseModel):
    items: list[Driver]
    next_cursor: str | None = None


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    employee_number: str | None = Field(None, min_length=1, max_length=64)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    licence_number: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()./-]{3,31}$")
    tags: list[str] | None = None
    fleet_id: uuid.UUID | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_tags(value)


class DriverCreate(_Fields):
    name: str = Field(min_length=1, max_length=200)


class DriverPatch(_Fields):
    """Only the fields present change; ``null`` clears one (not the name)."""

    status: DriverStatus | None = None


class DriverQuery(PageQuery):
    q: str | None = Field(
        None, max_length=200, description="Words or prefixes of name, employee number or tags"
    )
    status: DriverStatus | None = None
    fleet_id: uuid.UUID | None = None
    tag: str | None = Field(None, max_length=64)
    sort: str = Field("name", pattern=sort_pattern(SORTS), description="Column, '-' for descending")


class DriverAssignmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: uuid.UUID | None = Field(description="The vehicle, or null to end the current one")
    at: AwareDatetime | None = Field(None, description="When; default now")


class DriverAssignment(BaseModel):
    vehicle_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None


class DriverExport(BaseModel):
    """Everything Fleetlink keeps about a driver (GDPR article 15 and 20)."""

    driver: Driver
    assignments: list[DriverAssignment]
    audit: list[dict[str, Any]]
    exported_at: datetime


def _context(tenant: str, driver_id: uuid.UUID, column: str) -> str:
    return f"drivers.{column}:{tenant}:{driver_id}"


def _driver(row: asyncpg.Record, cipher: FieldCipher, tenant: str, personal: bool) -> Driver:
    data = dict(row)
    for column in PERSONAL:
        token = data.pop(f"{column}_enc")
        data[column] = (
            cipher.decrypt(token, _context(tenant, row["id"], column))
            if personal and token
            else None
        )
    return Driver.model_validate(data)


def _snapshot(driver: Driver) -> dict[str, Any]:
    """The driver as the audit log keeps it: no personal fields."""
    return driver.model_dump(mode="json", exclude={"name", "email", *PERSONAL})


async def _fetch(request: web.Request, conn: asyncpg.Connection, driver_id: uuid.UUID) -> Driver:
    principal = principal_of(request)
    personal = principal.can(Permission.DRIVERS_PERSONAL)
    return await driver_by_id(
        conn, principal.tenant_id, driver_id, request.app[FIELD_CIPHER], personal
    )


async def driver_by_id(
    conn: asyncpg.Connection,
    tenant: str,
    driver_id: uuid.UUID,
    cipher: FieldCipher,
    personal: bool,
) -> Driver:
    """Return ``tenant``'s driver ``driver_id`` (personal fields only when ``personal``).

    Raises ProblemError(404) when the tenant has no such driver.
    """
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE d.tenant_id = $1 AND d.id = $2", tenant, driver_id
    )
    if row is None:
        raise ProblemError(404, f"no driver {driver_id}")
    return _driver(row, cipher, tenant, personal)


def _require_personal(request: web.Request, fields: set[str]) -> None:
    if fields & set(PERSONAL) and not principal_of(request).can(Permission.DRIVERS_PERSONAL):
        raise ProblemError(403, "changing a licence number or phone needs drivers:personal")


def _columns(request: web.Request, driver_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
    """Map API fields to columns, encrypting the personal ones."""
    cipher = request.app[FIELD_CIPHER]
    tenant = principal_of(request).tenant_id
    columns = {}
    for name, value in fields.items():
        if name in PERSONAL:
            columns[f"{name}_enc"] = (
                None if value is None else cipher.encrypt(value, _context(tenant, driver_id, name))
            )
        else:
            columns[name] = value
    return columns


def _employee_taken() -> ProblemError:
    return ProblemError(
        409,
        "another driver of this tenant has this employee number",
        errors=[{"field": "employee_number", "message": "already in use"}],
    )


@api.get(
    "/api/v1/drivers",
    summary="List, filter, sort and search the drivers",
    response=DriverList,
    permission=Permission.DRIVERS_READ,
    query=DriverQuery,
    errors=(400,),
)
async def list_drivers(request: web.Request) -> web.Response:
    query = query_model(request, DriverQuery)
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        drivers = await driver_list(
            conn,
            principal.tenant_id,
            query,
            request.app[FIELD_CIPHER],
            principal.can(Permission.DRIVERS_PERSONAL),
        )
    return json_response(drivers)


async def driver_list(
    conn: asyncpg.Connection,
    tenant: str,
    query: DriverQuery,
    cipher: FieldCipher,
    personal: bool,
) -> DriverList:
    """Return the page of ``tenant``'s drivers that ``query`` asks for; licence numbers and
    phones are decrypted only when ``personal``.

    Raises ProblemError(400) for a cursor that does not fit the sort.
    """
    args: list[Any] = [tenant]
    conditions = ["d.tenant_id = $1"]
    if query.q and (tsquery := prefix_query(query.q)):
        args.append(tsquery)
        conditions.append(f"d.search @@ to_tsquery('simple', ${len(args)})")
    for column, value in (("status", query.status), ("fleet_id", query.fleet_id)):
        if value is not None:
            args.append(value)
            conditions.append(f"d.{column} = ${len(args)}")
    if query.tag is not None:
        args.append(query.tag)
        conditions.append(f"${len(args)} = ANY (d.tags)")
    after, order = keyset(SORTS, query.sort, query.cursor, "d.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE {' AND '.join(conditions)} {order} LIMIT ${len(args)}"
    rows = await conn.fetch(sql, *args)
    shown, cursor = split_page(rows, query.limit, SORTS, query.sort)
    items = [_driver(r, cipher, tenant, personal) for r in shown]
    return DriverList(items=items, next_cursor=cursor)


@api.get(
    "/api/v1/drivers/{driver_id}",
    summary="One driver",
    response=Driver,
    permission=Permission.DRIVERS_READ,
    path_params={"driver_id": DRIVER_ID},
    headers=ETAG_HEADER,
    errors=(400, 404),
)
async def get_driver(request: web.Request) -> web.Response:
    driver_id = path_uuid(request, "driver_id")
    async with tenant_transaction(request) as conn:
        driver = await _fetch(request, conn, driver_id)
    return json_response(driver, version=driver.version)


@api.post(
    "/api/v1/drivers",
    summary="Add a driver",
    response=Driver,
    permission=Permission.DRIVERS_WRITE,
    body=DriverCreate,
    status=201,
    headers=ETAG_HEADER,
    errors=(400, 403, 409, 415, 422),
)
async def create_driver(request: web.Request) -> web.Response:
    body: DriverCreate = await json_body(request, DriverCreate)
    async with tenant_transaction(request) as conn:
        driver = await add_driver(request, conn, body)
    response = json_response(driver, status=201, version=driver.version)
    response.headers["Location"] = f"/api/v1/drivers/{driver.id}"
    return response


async def add_driver(request: web.Request, conn: asyncpg.Connection, body: DriverCreate) -> Driver:
    """Store ``body`` as a new driver of the caller's tenant (licence number and phone
    encrypted), audit it without its personal fields and return it.

    Raises ProblemError 403 (a licence number or phone without drivers:personal), 422 (an
    unknown fleet) or 409 (the employee number is another driver's, ``errors`` naming it).
    """
    fields = body.model_dump(exclude_none=True)
    _require_personal(request, set(fields))
    principal = principal_of(request)
    driver_id = uuid.uuid4()
    columns = {
        "id": driver_id,
        "tenant_id": principal.tenant_id,
        **_columns(request, driver_id, fields),
    }
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await require_fleet(conn, principal.tenant_id, body.fleet_id)
    try:
        await conn.execute(
            f"INSERT INTO drivers ({', '.join(columns)}) VALUES ({placeholders})",
            *columns.values(),
        )
    except asyncpg.UniqueViolationError:
        raise _employee_taken() from None
    driver = await _fetch(request, conn, driver_id)
    await record_change(request, conn, "create", "driver", driver_id, after=_snapshot(driver))
    return driver


@api.patch(
    "/api/v1/drivers/{driver_id}",
    if_match=True,
    summary="Change a driver (send If-Match with its ETag)",
    response=Driver,
    permission=Permission.DRIVERS_WRITE,
    body=DriverPatch,
    path_params={"driver_id": DRIVER_ID},
    headers=ETAG_HEADER,
    errors=(400, 403, 404, 409, 412, 415, 422, 428),
)
async def patch_driver(request: web.Request) -> web.Response:
    driver_id = path_uuid(request, "driver_id")
    body: DriverPatch = await json_body(request, DriverPatch)
    async with tenant_transaction(request) as conn:
        after = await change_driver(
            request, conn, driver_id, body, request.headers.get("If-Match", "")
        )
    return json_response(after, version=after.version)


async def change_driver(
    request: web.Request,
    conn: asyncpg.Connection,
    driver_id: uuid.UUID,
    body: DriverPatch,
    if_match: str,
) -> Driver:
    """Apply the fields set in ``body`` to the tenant's driver if ``if_match`` (an If-Match
    value) names its current version; audit the change (without personal fields) and return
    the driver.

    Raises ProblemError 422 (a name, status or tags set to null; an unknown fleet), 403 (a
    licence number or phone without drivers:personal), 404 (no such driver), 428 (empty
    ``if_match``), 412 (the driver changed since that version) or 409 (an erased driver; the
    employee number is another driver's).
    """
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    for required in ("name", "status", "tags"):
        if required in changes and changes[required] is None:
            raise ProblemError(
                422,
                f"{required} cannot be null",
                errors=[{"field": required, "message": "cannot be null"}],
            )
    _require_personal(request, set(changes))
    principal = principal_of(request)
    before = await _fetch(request, conn, driver_id)
    check_if_match(if_match, before.version)
    if before.erased_at is not None:
        raise ProblemError(409, "an erased driver cannot be changed")
    if "fleet_id" in changes:
        await require_fleet(conn, principal.tenant_id, changes["fleet_id"])
    columns = _columns(request, driver_id, changes)
    if columns:
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
        try:
            await conn.execute(
                f"UPDATE drivers SET {sets}, version = version + 1, updated_at = now() "
                "WHERE tenant_id = $1 AND id = $2",
                principal.tenant_id,
                driver_id,
                *columns.values(),
            )
        except asyncpg.UniqueViolationError:
            raise _employee_taken() from None
    after = await _fetch(request, conn, driver_id)
    if columns:
        await record_change(
            request,
            conn,
            "update",
            "driver",
            driver_id,
            before=_snapshot(before),
            after=_snapshot(after),
        )
    return after


@api.delete(
    "/api/v1/drivers/{driver_id}",
    summary="Retire a driver: kept with their history, their vehicle assignment ends",
    response=Driver,
    permission=Permission.DRIVERS_WRITE,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404),
)
async def retire_driver(request: web.Request) -> web.Response:
    driver_id = path_uuid(request, "driver_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        before = await _fetch(request, conn, driver_id)
        await _end_assignment(conn, principal.tenant_id, driver_id, None)
        await conn.execute(
            "UPDATE drivers SET status = 'retired', version = version + 1, updated_at = now() "
            "WHERE tenant_id = $1 AND id = $2 AND status <> 'retired'",
            principal.tenant_id,
            driver_id,
        )
        after = await _fetch(request, conn, driver_id)
        if before.status != after.status:
            await record_change(
                request,
                conn,
                "retire",
                "driver",
                driver_id,
                before=_snapshot(before),
                after=_snapshot(after),
            )
    return json_response(after, version=after.version)


async def _end_assignment(
    conn: asyncpg.Connection, tenant: str, driver_id: uuid.UUID, at: datetime | None
) -> None:
    if at is None:  # ending now: an assignment planned for later is cancelled
        await conn.execute(
            "DELETE FROM driver_assignments WHERE tenant_id = $1 AND driver_id = $2 "
            "AND valid_to IS NULL AND valid_from >= now()",
            tenant,
            driver_id,
        )
    try:
        await conn.execute(
            "UPDATE driver_assignments SET valid_to = coalesce($3, now()) "
            "WHERE tenant_id = $1 AND driver_id = $2 AND valid_to IS NULL",
            tenant,
            driver_id,
            at,
        )
    except asyncpg.CheckViolationError:
        raise ProblemError(409, "the current assignment starts after that time") from None


@api.post(
    "/api/v1/drivers/{driver_id}/assignment",
    summary="Put the driver in a vehicle from a time on (null: out of any vehicle)",
    response=Driver,
    permission=Permission.DRIVERS_WRITE,
    body=DriverAssignmentRequest,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404, 409, 415, 422),
)
async def assign_driver(request: web.Request) -> web.Response:
    driver_id = path_uuid(request, "driver_id")
    body: DriverAssignmentRequest = await json_body(request, DriverAssignmentRequest)
    async with tenant_transaction(request) as conn:
        after = await assign_vehicle(request, conn, driver_id, body)
    return json_response(after, version=after.version)


async def assign_vehicle(
    request: web.Request,
    conn: asyncpg.Connection,
    driver_id: uuid.UUID,
    body: DriverAssignmentRequest,
) -> Driver:
    """Put the tenant's driver in ``body.vehicle_id`` (None: out of any vehicle) from
    ``body.at`` (default now), ending the current assignment; audit it and return the driver.

    Raises ProblemError 404 (no such driver), 409 (a retired driver; an assignment starting
    after ``body.at``) or 422 (no such active vehicle, ``errors`` naming ``vehicle_id``).
    """
    principal = principal_of(request)
    before = await _fetch(request, conn, driver_id)
    if before.status != "active":
        raise ProblemError(409, "a retired driver cannot be assigned")
    if body.vehicle_id is not None and not await conn.fetchval(
        "SELECT 1 FROM vehicles WHERE tenant_id = $1 AND id = $2 AND status <> 'retired'",
        principal.tenant_id,
        body.vehicle_id,
    ):
        raise ProblemError(
            422,
            f"no active vehicle {body.vehicle_id}",
            errors=[{"field": "vehicle_id", "message": "unknown or retired"}],
        )
    await _end_assignment(conn, principal.tenant_id, driver_id, body.at)
    if body.vehicle_id is not None:
        await conn.execute(
            "INSERT INTO driver_assignments (tenant_id, driver_id, vehicle_id, valid_from) "
            "VALUES ($1, $2, $3, coalesce($4, now()))",
            principal.tenant_id,
            driver_id,
            body.vehicle_id,
            body.at,
        )
    after = await _fetch(request, conn, driver_id)
    await record_change(
        request,
        conn,
        "assign",
        "driver",
        driver_id,
        before={"vehicle_id": str(before.vehicle_id) if before.vehicle_id else None},
        after={"vehicle_id": str(after.vehicle_id) if after.vehicle_id else None},
    )
    return after


@api.get(
    "/api/v1/drivers/{driver_id}/export",
    summary="Everything kept about a driver, for a subject access request",
    response=DriverExport,
    permission=Permission.DRIVERS_PERSONAL,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404),
)
async def export_driver(request: web.Request) -> web.Response:
    driver_id = path_uuid(request, "driver_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        driver = await _fetch(request, conn, driver_id)
        assignments = await conn.fetch(
            "SELECT vehicle_id, valid_from, valid_to FROM driver_assignments "
            "WHERE tenant_id = $1 AND driver_id = $2 ORDER BY valid_from",
            principal.tenant_id,
            driver_id,
        )
        entries = await conn.fetch(
            "SELECT at, actor, action, before, after FROM audit_log "
            "WHERE tenant_id = $1 AND resource = 'driver' AND resource_id = $2 ORDER BY id",
            principal.tenant_id,
            str(driver_id),
        )
        await record_change(
            request,
            conn,
            "export",
            "driver",
            driver_id,
        )
        exported_at = await conn.fetchval("SELECT now()")
    body = DriverExport(
        driver=driver,
        assignments=[DriverAssignment.model_validate(dict(r)) for r in assignments],
        audit=[{**dict(e), "at": e["at"].isoformat()} for e in entries],
        exported_at=exported_at,
    )
    return json_response(body)


@api.post(
    "/api/v1/drivers/{driver_id}/erase",
    summary="Erase a driver's personal data (GDPR article 17); trips and scores stay, anonymous",
    response=Driver,
    permission=Permission.DRIVERS_PERSONAL,
    path_params={"driver_id": DRIVER_ID},
    errors=(400, 404),
)
async def erase_driver(request: web.Request) -> web.Response:
    driver_id = path_uuid(request, "driver_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        before = await _fetch(request, conn, driver_id)
        await _end_assignment(conn, principal.tenant_id, driver_id, None)
        await conn.execute(
            "UPDATE drivers SET name = 'Erased driver', employee_number = NULL, email = NULL, "
            "licence_number_enc = NULL, phone_enc = NULL, tags = '{}', user_id = NULL, "
            "status = 'retired', erased_at = coalesce(erased_at, now()), version = version + 1, "
            "updated_at = now() WHERE tenant_id = $1 AND id = $2",
            principal.tenant_id,
            driver_id,
        )
        after = await _fetch(request, conn, driver_id)
        await record_change(
            request,
            conn,
            "erase",
            "driver",
            driver_id,
            before=_snapshot(before),
            after=_snapshot(after),
        )
    return json_response(after, version=after.version)
