"""Provisioning through the API: enrollment tokens, the enroll endpoint a device calls, install
reports, the device's status and binding history, swap and removal, and remote updates.

``POST /api/v1/enroll`` is authenticated by the one-time enrollment token in its body only;
``POST /api/v1/install-reports`` by the HMAC of the device's own key. Everything else is a
member's call, tenant-scoped like every other resource.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud import enrollment
from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.devices import DEVICE_ID
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.rest import json_body, json_response
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import LOGIN_LIMITER, POOL, SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.broker_identity import BrokerFilesError
from fleetlink.cloud.updates import UpdateError, publish_command, record_command, sign_update
from fleetlink.shared.enrollment import EnrollRequest, EnrollResponse, InstallReport
from fleetlink.shared.signing import verify
from fleetlink.shared.updates import MAX_CONTENT_BYTES, UpdateKind, Version

log = logging.getLogger(__name__)

api = ResourceRoutes("provisioning")
routes = api.routes

TOKEN_ID = {"description": "Enrollment token id", "schema": {"type": "string", "format": "uuid"}}
VEHICLE_ID = {"description": "Vehicle id", "schema": {"type": "string", "format": "uuid"}}


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vehicle_id: uuid.UUID | None = Field(None, description="Only this vehicle may be enrolled")
    label: str = Field("", max_length=200)
    hours: float | None = Field(
        None,
        ge=0.01,
        le=24 * 90,
        description="Lifetime; default FLEETLINK_ENROLLMENT_TOKEN_HOURS",
    )


class TokenCreated(BaseModel):
    id: uuid.UUID
    token: str = Field(description="The secret, shown only now; it enrolls one device")
    expires_at: datetime
    vehicle_id: uuid.UUID | None
    label: str


class TokenInfo(BaseModel):
    id: uuid.UUID
    vehicle_id: uuid.UUID | None
    label: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    revoked_at: datetime | None
    state: Literal["open", "used", "expired", "revoked"]


class TokenList(BaseModel):
    items: list[TokenInfo]


class ReportStored(BaseModel):
    id: int
    passed: bool
    vehicle_id: uuid.UUID | None


class StoredReport(BaseModel):
    id: int
    device_id: str
    vehicle_id: uuid.UUID | None
    received_at: datetime
    passed: bool
    report: dict[str, Any]


class ReportList(BaseModel):
    items: list[StoredReport]


class DeviceStatus(BaseModel):
    device_id: str
    online: bool | None
    last_seen: datetime | None
    agent_version: str | None
    adapter: str | None
    buffered_batches: int | None
    profile: str | None
    versions: dict[str, str]
    removed_at: datetime | None
    broker_credential: Literal["live", "revoked", "none"]


class Binding(BaseModel):
    device_id: str
    vehicle_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None


class BindingList(BaseModel):
    items: list[Binding]


class Removed(BaseModel):
    device_id: str
    removed_at: datetime


class SwapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replacement: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = Field(
        description="The device that takes this one's place in its vehicle"
    )


class Swapped(BaseModel):
    removed: str
    replacement: str
    vehicle_id: uuid.UUID
    at: datetime


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: UpdateKind
    version: Version
    content_b64: str = Field(
        max_length=(MAX_CONTENT_BYTES * 4) // 3 + 4, description="The file, base64"
    )


class Command(BaseModel):
    id: uuid.UUID
    device_id: str
    kind: str
    version: str
    sha256: str
    size: int
    issued_by: str
    issued_at: datetime
    published_at: datetime | None
    outcome: str | None = Field(description="applied, refused or rolled_back; null: no answer")
    reason: str | None
    reported_at: datetime | None


class CommandList(BaseModel):
    items: list[Command]


async def _sync_broker(request: web.Request) -> None:
    """Rewrite the broker's files after a committed change; a failure is logged, not fatal:
    the change stands and the next change (or `fleetlink cloud broker sync`) writes them."""
    try:
        await enrollment.sync_broker(request.app[POOL], request.app[SETTINGS])
    except BrokerFilesError as exc:
        log.error("broker files not updated: %s", exc)


@api.post(
    "/api/v1/enrollment-tokens",
    summary="Create a one-time, expiring enrollment token (shown once)",
    response=TokenCreated,
    permission=Permission.DEVICES_WRITE,
    body=TokenCreate,
    status=201,
    errors=(400, 415, 422),
)
async def create_token(request: web.Request) -> web.Response:
    body: TokenCreate = await json_body(request, TokenCreate)
    async with tenant_transaction(request) as conn:
        created = await issue_token(request, conn, body)
    return json_response(created, status=201)


async def issue_token(
    request: web.Request, conn: asyncpg.Connection, body: TokenCreate
) -> TokenCreated:
    """Create the caller's tenant an enrollment token as ``body`` asks (audited); return it
    with its secret, which is shown only now.

    Raises ProblemError(404) for a vehicle the tenant does not have.
    """
    principal = principal_of(request)
    hours = enrollment.token_lifetime(request.app[SETTINGS], body.hours)
    try:
        made = await enrollment.create_token(
            conn, principal.tenant_id, principal.actor, hours, body.vehicle_id, body.label
        )
    except enrollment.EnrollmentError as exc:
        raise ProblemError(
            exc.status, str(exc), errors=[{"field": "vehicle_id", "message": "unknown"}]
        ) from None
    await record_change(
        request,
        conn,
        "create",
        "enrollment_token",
        made.id,
        after={"vehicle_id": body.vehicle_id, "label": body.label, "hours": hours},
    )
    return TokenCreated(
        id=made.id,
        token=made.secret,
        expires_at=made.expires_at,
        vehicle_id=body.vehicle_id,
        label=body.label,
    )


@api.get(
    "/api/v1/enrollment-tokens",
    summary="The tenant's enrollment tokens, newest first (never their secrets)",
    response=TokenList,
    permission=Permission.DEVICES_READ,
)
async def list_tokens(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        tokens = await token_list(conn, principal_of(request).tenant_id)
    return json_response(tokens)


async def token_list(conn: asyncpg.Connection, tenant: str) -> TokenList:
    """Return the tenant's enrollment tokens (up to 500), newest first, without secrets."""
    rows = await conn.fetch(
        "SELECT id, vehicle_id, label, created_by, created_at, expires_at, used_at, used_by, "
        "revoked_at, CASE WHEN revoked_at IS NOT NULL THEN 'revoked' "
        "WHEN used_at IS NOT NULL THEN 'used' WHEN expires_at <= now() THEN 'expired' "
        "ELSE 'open' END AS state FROM enrollment_tokens WHERE tenant_id = $1 "
        "ORDER BY created_at DESC LIMIT 500",
        tenant,
    )
    return TokenList(items=[TokenInfo.model_validate(dict(r)) for r in rows])


class TokenRevoked(BaseModel):
    id: uuid.UUID
    revoked_at: datetime


@api.delete(
    "/api/v1/enrollment-tokens/{token_id}",
    summary="Revoke an enrollment token",
    response=TokenRevoked,
    permission=Permission.DEVICES_WRITE,
    path_params={"token_id": TOKEN_ID},
    errors=(404,),
)
async def revoke_token(request: web.Request) -> web.Response:
    token_id = uuid.UUID(request.match_info["token_id"])
    async with tenant_transaction(request) as conn:
        revoked = await revoke_enrollment_token(request, conn, token_id)
    return json_response(revoked)


async def revoke_enrollment_token(
    request: web.Request, conn: asyncpg.Connection, token_id: uuid.UUID
) -> TokenRevoked:
    """Revoke the caller's tenant's enrollment token ``token_id`` (audited); return when.

    Raises ProblemError(404) when the tenant has no such token.
    """
    tenant = principal_of(request).tenant_id
    if not await enrollment.revoke_token(conn, tenant, token_id):
        raise ProblemError(404, f"no enrollment token {token_id}")
    revoked_at = await conn.fetchval(
        "SELECT revoked_at FROM enrollment_tokens WHERE id = $1", token_id
    )
    await record_change(request, conn, "revoke", "enrollment_token", token_id)
    return TokenRevoked(id=token_id, revoked_at=revoked_at)


@api.post(
    "/api/v1/enroll",
    summary="Enroll a device with a one-time enrollment token (the device calls this)",
    response=EnrollResponse,
    public=True,
    body=EnrollRequest,
    status=201,
    errors=(400, 401, 409, 415, 422, 429, 503),
)
async def enroll_route(request: web.Request) -> web.Response:
    wait_s = request.app[LOGIN_LIMITER].take(f"enroll:{request.remote}")
    if wait_s:
        raise ProblemError(
            429,
            "too many enrollment attempts from this address",
            headers={"Retry-After": RateLimiter.retry_after(wait_s)},
        )
    body: EnrollRequest = await json_body(request, EnrollRequest)
    async with request.app[POOL].acquire() as conn:
        try:
            answer = await enrollment.enroll(conn, request.app[SETTINGS], body, request.remote)
        except enrollment.EnrollmentError as exc:
            raise ProblemError(exc.status, str(exc)) from None
    await _sync_broker(request)
    return web.json_response(text=answer.model_dump_json(), status=201)


@api.post(
    "/api/v1/install-reports",
    summary="Upload a device's signed self-test report (the device calls this)",
    response=ReportStored,
    public=True,
    body=InstallReport,
    status=201,
    errors=(400, 401, 415, 422),
)
async def upload_report(request: web.Request) -> web.Response:
    report: InstallReport = await json_body(request, InstallReport)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT d.tenant_id, k.key, a.vehicle_id FROM devices d "
            "JOIN device_keys k ON k.device_id = d.id "
            "LEFT JOIN device_assignments a ON a.device_id = d.id AND a.valid_to IS NULL "
            "WHERE d.id = $1 AND d.removed_at IS NULL",
            report.device_id,
        )
        if row is None or not verify(bytes(row["key"]), report):
            raise ProblemError(401, "the report's signature does not verify for that device")
        report_id = await conn.fetchval(
            "INSERT INTO install_reports (tenant_id, device_id, vehicle_id, passed, report) "
            "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
            row["tenant_id"],
            report.device_id,
            row["vehicle_id"],
            report.passed,
            report.model_dump_json(),
        )
    stored = ReportStored(id=report_id, passed=report.passed, vehicle_id=row["vehicle_id"])
    return json_response(stored, status=201)


@api.get(
    "/api/v1/vehicles/{vehicle_id}/install-reports",
    summary="The install reports of the devices installed in a vehicle, newest first",
    response=ReportList,
    permission=Permission.VEHICLES_READ,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(404,),
)
async def vehicle_reports(request: web.Request) -> web.Response:
    vehicle_id = uuid.UUID(request.match_info["vehicle_id"])
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        if not await conn.fetchval(
            "SELECT 1 FROM vehicles WHERE tenant_id = $1 AND id = $2", tenant, vehicle_id
        ):
            raise ProblemError(404, f"no vehicle {vehicle_id}")
        reports = await install_reports(conn, tenant, vehicle_id)
    return json_response(reports)


async def install_reports(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID | None = None, limit: int = 100
) -> ReportList:
    """Return the tenant's newest ``limit`` install reports (of one vehicle when
    ``vehicle_id`` is given), newest first."""
    rows = await conn.fetch(
        "SELECT id, device_id, vehicle_id, received_at, passed, report FROM install_reports "
        "WHERE tenant_id = $1 AND ($2::uuid IS NULL OR vehicle_id = $2) "
        "ORDER BY received_at DESC LIMIT $3",
        tenant,
        vehicle_id,
        limit,
    )
    return ReportList(items=[StoredReport.model_validate(dict(r)) for r in rows])


async def _device_row(conn: asyncpg.Connection, tenant: str, device_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT d.id, d.online, d.last_seen, d.agent_version, d.status, d.removed_at, "
        "(SELECT CASE WHEN count(*) = 0 THEN 'none' WHEN bool_or(c.revoked_at IS NULL) "
        "THEN 'live' ELSE 'revoked' END FROM device_credentials c WHERE c.device_id = d.id) "
        "AS credential "
        "FROM devices d WHERE d.tenant_id = $1 AND d.id = $2",
        tenant,
        device_id,
    )
    if row is None:
        raise ProblemError(404, f"no device {device_id!r}")
    return row


@api.get(
    "/api/v1/devices/{device_id}/status",
    summary="A device's presence and what it runs, from its birth and last-will messages",
    response=DeviceStatus,
    permission=Permission.DEVICES_READ,
    path_params={"device_id": DEVICE_ID},
    errors=(404,),
)
async def device_status(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    async with tenant_transaction(request) as conn:
        row = await _device_row(conn, principal_of(request).tenant_id, device_id)
    status: dict[str, Any] = row["status"] or {}
    return json_response(
        DeviceStatus(
            device_id=device_id,
            online=row["online"],
            last_seen=row["last_seen"],
            agent_version=row["agent_version"],
            adapter=status.get("adapter"),
            buffered_batches=status.get("buffered_batches"),
            profile=status.get("profile") or None,
            versions=status.get("versions") or {},
            removed_at=row["removed_at"],
            broker_credential=row["credential"],
        )
    )


@api.get(
    "/api/v1/devices/{device_id}/bindings",
    summary="Which vehicle the device was in, and when, oldest first",
    response=BindingList,
    permission=Permission.DEVICES_READ,
    path_params={"device_id": DEVICE_ID},
    errors=(404,),
)
async def device_bindings(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        await _device_row(conn, tenant, device_id)
        rows = await conn.fetch(
            "SELECT device_id, vehicle_id, valid_from, valid_to FROM device_assignments "
            "WHERE tenant_id = $1 AND device_id = $2 ORDER BY valid_from",
            tenant,
            device_id,
        )
    return json_response(BindingList(items=[Binding.model_validate(dict(r)) for r in rows]))


@api.post(
    "/api/v1/devices/{device_id}/remove",
    summary="Take a device out of service: end its assignment and revoke its broker login",
    response=Removed,
    permission=Permission.DEVICES_WRITE,
    path_params={"device_id": DEVICE_ID},
    errors=(404, 409),
)
async def remove_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        try:
            await enrollment.remove_device(conn, tenant, device_id)
        except enrollment.EnrollmentError as exc:
            raise ProblemError(exc.status, str(exc)) from None
        removed_at = await conn.fetchval("SELECT removed_at FROM devices WHERE id = $1", device_id)
        await record_change(request, conn, "remove", "device", device_id)
    await _sync_broker(request)
    return json_response(Removed(device_id=device_id, removed_at=removed_at))


@api.post(
    "/api/v1/devices/{device_id}/swap",
    summary="Replace a device in its vehicle by another at one instant; revoke the old login",
    response=Swapped,
    permission=Permission.DEVICES_WRITE,
    body=SwapRequest,
    path_params={"device_id": DEVICE_ID},
    errors=(400, 404, 409, 415, 422),
)
async def swap_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    body: SwapRequest = await json_body(request, SwapRequest)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        try:
            vehicle_id, at = await enrollment.swap_device(conn, tenant, device_id, body.replacement)
        except enrollment.EnrollmentError as exc:
            raise ProblemError(exc.status, str(exc)) from None
        swapped = Swapped(
            removed=device_id, replacement=body.replacement, vehicle_id=vehicle_id, at=at
        )
        await record_change(request, conn, "swap", "device", device_id, after=swapped)
    await _sync_broker(request)
    return json_response(swapped)


_COMMANDS = (
    "SELECT c.id, c.device_id, c.kind, c.version, c.sha256, c.size, c.issued_by, c.issued_at, "
    "c.published_at, r.data ->> 'outcome' AS outcome, r.data ->> 'reason' AS reason, "
    "r.ts AS reported_at FROM device_commands c LEFT JOIN LATERAL (SELECT e.data, e.ts "
    "FROM events e WHERE e.type = 'update_result' AND e.data ->> 'command_id' = c.id::text "
    "AND e.device_id = c.device_id AND e.tenant_id = c.tenant_id ORDER BY e.ts DESC LIMIT 1) "
    "r ON true WHERE c.tenant_id = $1 AND c.device_id = $2"
)


@api.post(
    "/api/v1/devices/{device_id}/commands",
    summary="Push a signed configuration, profile or model update to a device",
    response=Command,
    permission=Permission.DEVICES_WRITE,
    body=CommandCreate,
    path_params={"device_id": DEVICE_ID},
    status=201,
    errors=(400, 404, 409, 415, 422, 503),
)
async def push_update(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    body: CommandCreate = await json_body(request, CommandCreate)
    principal = principal_of(request)
    settings = request.app[SETTINGS]
    try:
        content = base64.b64decode(body.content_b64, validate=True)
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise ProblemError(
            422,
            "content_b64 is not base64",
            errors=[{"field": "content_b64", "message": "not base64"}],
        ) from None
    async with tenant_transaction(request) as conn:
        row = await _device_row(conn, principal.tenant_id, device_id)
        if row["removed_at"] is not None:
            raise ProblemError(409, f"device {device_id!r} was removed")
        try:
            command = sign_update(settings, device_id, body.kind, body.version, content)
        except UpdateError as exc:
            raise ProblemError(exc.status, str(exc)) from None
        await record_command(conn, principal.tenant_id, principal.actor, command, len(content))
        await record_change(
            request,
            conn,
            "push",
            "device_command",
            command.command_id,
            after={"device_id": device_id, "kind": body.kind, "version": body.version},
        )
    try:
        await publish_command(settings, principal.tenant_id, command)
    except UpdateError as exc:
        raise ProblemError(exc.status, f"recorded, but not sent: {exc}") from None
    async with tenant_transaction(request) as conn:
        await conn.execute(
            "UPDATE device_commands SET published_at = now() WHERE id = $1", command.command_id
        )
        stored = await conn.fetchrow(
            _COMMANDS + " AND c.id = $3", principal.tenant_id, device_id, command.command_id
        )
    return json_response(Command.model_validate(dict(stored)), status=201)


@api.get(
    "/api/v1/devices/{device_id}/commands",
    summary="The updates pushed to a device and its answers, newest first",
    response=CommandList,
    permission=Permission.DEVICES_READ,
    path_params={"device_id": DEVICE_ID},
    errors=(404,),
)
async def list_commands(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        await _device_row(conn, tenant, device_id)
        rows = await conn.fetch(
            _COMMANDS + " ORDER BY c.issued_at DESC LIMIT 200", tenant, device_id
        )
    return json_response(CommandList(items=[Command.model_validate(dict(r)) for r in rows]))
