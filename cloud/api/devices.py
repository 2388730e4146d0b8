"""``/api/v1/devices``: the tenant's in-vehicle devices, their state and their vehicle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from fleetlink.cloud import registry
from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import query_model
from fleetlink.cloud.api.rest import (
    PageQuery,
    SortKey,
    json_body,
    json_response,
    keyset,
    require_if_match,
    sort_pattern,
    split_page,
)
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.firmware_profiles import profile_ids
from fleetlink.shared.topics import TopicError, check_segment

api = ResourceRoutes("devices")
routes = api.routes

DEVICE_ID = {
    "description": "Device id",
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,64}$"},
}


class Device(BaseModel):
    id: str
    name: str
    serial: str | None
    firmware_profile: str | None
    agent_version: str | None
    online: bool | None
    last_seen: datetime | None
    vehicle_id: uuid.UUID | None = Field(description="The vehicle the device is in now, if any")
    created_at: datetime
    version: int


class DeviceList(BaseModel):
    items: list[Device]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


ProfileId = Annotated[
    str, Field(description="A shipped firmware profile", json_schema_extra={"enum": profile_ids()})
]


def _profile(value: str | None) -> str | None:
    if value is not None and value not in profile_ids():
        raise ValueError(f"not a shipped firmware profile ({', '.join(profile_ids())})")
    return value


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The device's id, as in its configuration and MQTT topics")
    name: str = Field("", max_length=200)
    serial: str | None = Field(None, max_length=100)
    firmware_profile: ProfileId | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        try:
            return check_segment(value, "device id")
        except TopicError as exc:
            raise ValueError(str(exc)) from None

    _check_profile = field_validator("firmware_profile")(_profile)


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    serial: str | None = Field(None, max_length=100)
    firmware_profile: ProfileId | None = None

    _check_profile = field_validator("firmware_profile")(_profile)


class AssignmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: uuid.UUID
    at: AwareDatetime | None = Field(None, description="Start; default now")


class Assignment(BaseModel):
    device_id: str
    vehicle_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None


_SELECT = (
    "SELECT d.id, d.name, d.serial, d.firmware_profile, d.agent_version, d.online, d.last_seen, "
    "a.vehicle_id, d.created_at, d.version FROM devices d "
    "LEFT JOIN device_assignments a ON a.device_id = d.id AND a.valid_to IS NULL "
    "AND a.tenant_id = d.tenant_id WHERE d.tenant_id = $1"
)


async def fetch_device(conn: asyncpg.Connection, tenant: str, device_id: str) -> Device:
    row = await conn.fetchrow(_SELECT + " AND d.id = $2", tenant, device_id)
    if row is None:
        raise ProblemError(404, f"no device {device_id!r}")
    return Device.model_validate(dict(row))


SORTS = {
    "id": SortKey("id", "d.id", "text"),
    "name": SortKey("name", "d.name", "text"),
    "created_at": SortKey("created_at", "d.created_at", "timestamptz"),
}


class DeviceQuery(PageQuery):
    online: bool | None = None
    assigned: bool | None = Field(None, description="Only devices in a vehicle (or not)")
    firmware_profile: str | None = Field(None, max_length=64)
    sort: str = Field("id", pattern=sort_pattern(SORTS), description="Column, '-' for descending")


@api.get(
    "/api/v1/devices",
    summary="The tenant's devices with their state",
    response=DeviceList,
    permission=Permission.DEVICES_READ,
    query=DeviceQuery,
    errors=(400,),
)
async def list_devices(request: web.Request) -> web.Response:
    query = query_model(request, DeviceQuery)
    async with tenant_transaction(request) as conn:
        devices = await device_list(conn, principal_of(request).tenant_id, query)
    return json_response(devices)


async def device_list(conn: asyncpg.Connection, tenant: str, query: DeviceQuery) -> DeviceList:
    """Return the page of ``tenant``'s devices that ``query`` asks for.

    Raises ProblemError(400) for a cursor that does not fit the sort.
    """
    args: list[Any] = [tenant]
    conditions = []
    for column, value in (
        ("d.online", query.online),
        ("d.firmware_profile", query.firmware_profile),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if query.assigned is not None:
        conditions.append(f"a.vehicle_id IS {'NOT ' if query.assigned else ''}NULL")
    after, order = keyset(SORTS, query.sort, query.cursor, "d.id", args, "text")
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    where = "".join(f" AND {c}" for c in conditions)
    rows = await conn.fetch(f"{_SELECT}{where} {order} LIMIT ${len(args)}", *args)
    shown, cursor = split_page(rows, query.limit, SORTS, query.sort)
    items = [Device.model_validate(dict(r)) for r in shown]
    return DeviceList(items=items, next_cursor=cursor)


@api.get(
    "/api/v1/devices/{device_id}",
    summary="One device",
    response=Device,
    permission=Permission.DEVICES_READ,
    path_params={"device_id": DEVICE_ID},
    errors=(404,),
)
async def get_device(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        device = await fetch_device(
            conn, principal_of(request).tenant_id, request.match_info["device_id"]
        )
    return json_response(device, version=device.version)


@api.post(
    "/api/v1/devices",
    summary="Register a device",
    response=Device,
    permission=Permission.DEVICES_WRITE,
    body=DeviceCreate,
    status=201,
    errors=(400, 409, 415, 422),
)
async def create_device(request: web.Request) -> web.Response:
    body: DeviceCreate = await json_body(request, DeviceCreate)
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        try:
            await conn.execute(
                "INSERT INTO devices (id, tenant_id, name, serial, firmware_profile) "
                "VALUES ($1, $2, $3, $4, $5)",
                body.id,
                principal.tenant_id,
                body.name,
                body.serial,
                body.firmware_profile,
            )
        except asyncpg.UniqueViolationError:
            # Device ids are global (they name MQTT topics); say no more than that it is taken.
            raise ProblemError(
                409,
                f"the device id {body.id!r} is not available",
                errors=[{"field": "id", "message": "taken"}],
            ) from None
        device = await fetch_device(conn, principal.tenant_id, body.id)
        await record_change(
            request,
            conn,
            "create",
            "device",
            body.id,
            after=device,
        )
    return json_response(device, status=201, version=device.version)


@api.patch(
    "/api/v1/devices/{device_id}",
    if_match=True,
    summary="Rename a device or change its profile",
    response=Device,
    permission=Permission.DEVICES_WRITE,
    body=DevicePatch,
    path_params={"device_id": DEVICE_ID},
    errors=(400, 404, 412, 415, 422, 428),
)
async def patch_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    body: DevicePatch = await json_body(request, DevicePatch)
    principal = principal_of(request)
    changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    if changes.get("name", "") is None:
        raise ProblemError(
            422,
            "a device's name cannot be null",
            errors=[{"field": "name", "message": "cannot be null"}],
        )
    async with tenant_transaction(request) as conn:
        before = await fetch_device(conn, principal.tenant_id, device_id)
        require_if_match(request, before.version)
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            await conn.execute(
                f"UPDATE devices SET {sets}, version = version + 1 "
                "WHERE tenant_id = $1 AND id = $2",
                principal.tenant_id,
                device_id,
                *changes.values(),
            )
        after = await fetch_device(conn, principal.tenant_id, device_id)
        if changes:
            await record_change(
                request,
                conn,
                "update",
                "device",
                device_id,
                before=before,
                after=after,
            )
    return json_response(after, version=after.version)


@api.post(
    "/api/v1/devices/{device_id}/assignment",
    summary="Install the device in a vehicle, ending its previous assignment",
    response=Assignment,
    permission=Permission.DEVICES_WRITE,
    body=AssignmentRequest,
    path_params={"device_id": DEVICE_ID},
    status=201,
    errors=(400, 404, 409, 415, 422),
)
async def assign_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    body: AssignmentRequest = await json_body(request, AssignmentRequest)
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        await fetch_device(conn, principal.tenant_id, device_id)
        if not await conn.fetchval(
            "SELECT 1 FROM vehicles WHERE tenant_id = $1 AND id = $2",
            principal.tenant_id,
            body.vehicle_id,
        ):
            raise ProblemError(
                422,
                f"no vehicle {body.vehicle_id}",
                errors=[{"field": "vehicle_id", "message": "unknown"}],
            )
        try:
            done = await registry.assign_device(conn, device_id, body.vehicle_id, body.at)
        except registry.RegistryError as exc:
            raise ProblemError(409, str(exc)) from None
        assignment = Assignment(
            device_id=done.device_id,
            vehicle_id=done.vehicle_id,
            valid_from=done.valid_from,
            valid_to=done.valid_to,
        )
        await record_change(
            request,
            conn,
            "assign",
            "device",
            device_id,
            after=assignment,
        )
    return json_response(assignment, status=201)
