"""Enrolling devices: one-time, expiring enrollment tokens, the enrollment itself, and the
swap and removal of devices with their broker credentials.

An enrollment token is a random secret shown once; only its SHA-256 digest is stored
(``cloud.auth.digests``). Enrolling uses it up and hands the device its identity, its own
broker password (stored only as mosquitto's hash), its signing key, its seq high-water mark
and its vehicle, in one transaction. Every function takes a connection so callers choose the
transaction; :func:`sync_broker` rewrites mosquitto's files after a change is committed.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from fleetlink.cloud import audit, registry
from fleetlink.cloud.auth.digests import digest, new_secret
from fleetlink.cloud.broker_identity import (
    hash_password,
    live_logins,
    new_password,
    reload_broker,
    write_files,
)
from fleetlink.cloud.ingest.store import high_water_marks
from fleetlink.cloud.settings import CloudSettings
from fleetlink.firmware_profiles import profile_ids
from fleetlink.shared.enrollment import EnrollRequest, EnrollResponse
from fleetlink.shared.updates import UpdateKeyError, private_key, public_hex
from fleetlink.shared.vin import VinError, decode_vin

TOKEN_PREFIX = "flenr_"


class EnrollmentError(ValueError):
    """A refused enrollment, swap or removal: ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class NewToken:
    id: uuid.UUID
    secret: str
    expires_at: datetime


async def create_token(
    conn: asyncpg.Connection,
    tenant: str,
    actor: str,
    hours: float,
    vehicle_id: uuid.UUID | None = None,
    label: str = "",
) -> NewToken:
    """Create an enrollment token valid for ``hours`` and return it (its secret only now).

    Raises:
        EnrollmentError: (422) no such tenant, or the vehicle is not one of the tenant's.
    """
    if vehicle_id is not None and not await conn.fetchval(
        "SELECT 1 FROM vehicles WHERE tenant_id = $1 AND id = $2", tenant, vehicle_id
    ):
        raise EnrollmentError(422, f"no vehicle {vehicle_id}")
    secret = TOKEN_PREFIX + new_secret()
    token_id = uuid.uuid4()
    if not await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant):
        raise EnrollmentError(422, f"tenant {tenant!r} does not exist")
    expires_at = await conn.fetchval(
        "INSERT INTO enrollment_tokens (id, tenant_id, digest, vehicle_id, label, created_by, "
        "expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) "
        "RETURNING expires_at",
        token_id,
        tenant,
        digest(secret),
        vehicle_id,
        label,
        actor,
        hours * 3600.0,
    )
    return NewToken(token_id, secret, expires_at)


async def revoke_token(conn: asyncpg.Connection, tenant: str, token_id: uuid.UUID) -> bool:
    """Revoke an unused token; return False if the tenant has no such token."""
    status = await conn.execute(
        "UPDATE enrollment_tokens SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE tenant_id = $1 AND id = $2",
        tenant,
        token_id,
    )
    return status != "UPDATE 0"


async def revoke_credentials(conn: asyncpg.Connection, device_id: str) -> int:
    """Revoke the device's live broker credential; return how many were revoked (0 or 1)."""
    status = await conn.execute(
        "UPDATE device_credentials SET revoked_at = now() "
        "WHERE device_id = $1 AND revoked_at IS NULL",
        device_id,
    )
    return int(status.split()[-1])


async def _token_row(conn: asyncpg.Connection, secret: str, now: datetime) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM enrollment_tokens WHERE digest = $1 FOR UPDATE", digest(secret)
    )
    if row is None:
        raise EnrollmentError(401, "the enrollment token is not known: check it was typed whole")
    if row["revoked_at"] is not None:
        raise EnrollmentError(401, "the enrollment token was revoked; ask for a new one")
    if row["used_at"] is not None:
        raise EnrollmentError(
            409,
            f"the enrollment token was already used (by device {row['used_by']!r} at "
            f"{row['used_at']:%Y-%m-%d %H:%M} UTC); each token enrolls one device",
        )
    if row["expires_at"] <= now:
        raise EnrollmentError(
            401, f"the enrollment token expired at {row['expires_at']:%Y-%m-%d %H:%M} UTC"
        )
    return row


def _vehicle_name(vin: str) -> str:
    try:
        info = decode_vin(vin)
    except VinError:
        return vin
    words = [str(info.model_year or ""), info.make or "", info.model or ""]
    return " ".join(w for w in words if w) + f" …{vin[-6:]}"


async def _vehicle(
    conn: asyncpg.Connection, tenant: str, token: asyncpg.Record, vin: str | None
) -> asyncpg.Record | None:
    if token["vehicle_id"] is not None:
        vehicle = await conn.fetchrow(
            "SELECT id, name, vin FROM vehicles WHERE id = $1", token["vehicle_id"]
        )
        if vehicle is None:
            raise EnrollmentError(409, "the token's vehicle no longer exists")
        if vin and vehicle["vin"] and vehicle["vin"] != vin:
            raise EnrollmentError(
                409,
                f"the vehicle read VIN {vin}, but the token is for {vehicle['name']!r} with "
                f"VIN {vehicle['vin']}: is this the right vehicle?",
            )
        if vin and vehicle["vin"] is None:
            await conn.execute("UPDATE vehicles SET vin = $2 WHERE id = $1", vehicle["id"], vin)
        return vehicle
    if vin is None:
        return None
    vehicle = await conn.fetchrow(
        "SELECT id, name, vin FROM vehicles WHERE tenant_id = $1 AND vin = $2 "
        "ORDER BY created_at LIMIT 1",
        tenant,
        vin,
    )
    if vehicle is not None:
        return vehicle
    vehicle_id = await registry.create_vehicle(conn, tenant, _vehicle_name(vin), vin)
    return await conn.fetchrow("SELECT id, name, vin FROM vehicles WHERE id = $1", vehicle_id)


async def _device(conn: asyncpg.Connection, tenant: str, request: EnrollRequest) -> str:
    profile = request.profile if request.profile in profile_ids() else None
    if request.device_id is not None:
        row = await conn.fetchrow(
            "SELECT tenant_id, removed_at FROM devices WHERE id = $1 FOR UPDATE",
            request.device_id,
        )
        if row is None or row["tenant_id"] != tenant:
            raise EnrollmentError(409, f"the device id {request.device_id!r} is not available")
        if row["removed_at"] is not None:
            raise EnrollmentError(
                409, f"device {request.device_id!r} was removed; enroll it as a new device"
            )
        await revoke_credentials(conn, request.device_id)
        await conn.execute(
            "UPDATE devices SET serial = coalesce($2, serial), "
            "firmware_profile = coalesce($3, firmware_profile), version = version + 1 "
            "WHERE id = $1",
            request.device_id,
            request.serial,
            profile,
        )
        return request.device_id
    device_id = f"dev-{secrets.token_hex(6)}"
    await conn.execute(
        "INSERT INTO devices (id, tenant_id, serial, firmware_profile) VALUES ($1, $2, $3, $4)",
        device_id,
        tenant,
        request.serial,
        profile,
    )
    return device_id


async def _place(
    conn: asyncpg.Connection, device_id: str, vehicle_id: uuid.UUID, at: datetime
) -> None:
    """Put the device in the vehicle; a device the vehicle had until now is swapped out."""
    current = await conn.fetchval(
        "SELECT device_id FROM device_assignments WHERE vehicle_id = $1 AND valid_to IS NULL "
        "AND device_id <> $2",
        vehicle_id,
        device_id,
    )
    if current is not None:
        await end_assignment(conn, current, at)
        await revoke_credentials(conn, current)
    mine = await conn.fetchval(
        "SELECT vehicle_id FROM device_assignments WHERE device_id = $1 AND valid_to IS NULL",
        device_id,
    )
    if mine != vehicle_id:
        await registry.assign_device(conn, device_id, vehicle_id, at)


async def end_assignment(conn: asyncpg.Connection, device_id: str, at: datetime) -> None:
    """End the device's current assignment at ``at`` (nothing if it has none)."""
    await conn.execute(
        "UPDATE device_assignments SET valid_to = greatest($2, valid_from + interval '1 ms') "
        "WHERE device_id = $1 AND valid_to IS NULL",
        device_id,
        at,
    )


def update_public_key(settings: CloudSettings) -> str:
    """Return the public half of the update signing key, "" if none is configured.

    Raises:
        UpdateKeyError: FLEETLINK_UPDATE_SIGNING_KEY is not 64 hex characters.
    """
    if settings.update_signing_key is None:
        return ""
    return public_hex(private_key(settings.update_signing_key.get_secret_value()))


async def enroll(
    conn: asyncpg.Connection,
    settings: CloudSettings,
    request: EnrollRequest,
    remote: str | None = None,
) -> EnrollResponse:
    """Enroll a device with a one-time token; return its identity and secrets (shown once).

    Runs in one transaction: a refusal changes nothing, and the token is used up only by an
    enrollment that completes.

    Raises:
        EnrollmentError: unknown, revoked, expired or used token (401/409); a VIN that does
            not match the token's vehicle or a device id that is not the tenant's (409).
    """
    try:
        public = update_public_key(settings)
    except UpdateKeyError as exc:
        raise EnrollmentError(503, f"the cloud's update key is misconfigured: {exc}") from None
    now = datetime.now(UTC)
    async with conn.transaction():
        token = await _token_row(conn, request.token, now)
        tenant = token["tenant_id"]
        vehicle = await _vehicle(conn, tenant, token, request.vin)
        device_id = await _device(conn, tenant, request)
        if vehicle is not None:
            await _place(conn, device_id, vehicle["id"], now)
        password = new_password()
        await conn.execute(
            "INSERT INTO device_credentials (tenant_id, device_id, password_hash) "
            "VALUES ($1, $2, $3)",
            tenant,
            device_id,
            hash_password(password),
        )
        key = await registry.issue_device_key(conn, device_id)
        high_water = (await high_water_marks(conn, [device_id])).get(device_id, 0)
        await conn.execute(
            "UPDATE enrollment_tokens SET used_at = now(), used_by = $2 WHERE id = $1",
            token["id"],
            device_id,
        )
        await audit.record(
            conn,
            tenant,
            f"enrollment-token:{token['id']}",
            "enroll",
            "device",
            device_id,
            after={
                "vehicle_id": None if vehicle is None else str(vehicle["id"]),
                "vin": request.vin,
                "serial": request.serial,
                "agent_version": request.agent_version,
            },
            remote=remote,
        )
    return EnrollResponse(
        tenant=tenant,
        device_id=device_id,
        vehicle_id=None if vehicle is None else str(vehicle["id"]),
        vehicle_name=None if vehicle is None else vehicle["name"],
        mqtt_url=settings.devices_mqtt_url(),
        mqtt_username=device_id,
        mqtt_password=password,
        device_key=key.hex(),
        high_water=high_water,
        update_public_key=public,
    )


async def remove_device(conn: asyncpg.Connection, tenant: str, device_id: str) -> None:
    """Take a device out of service: its assignment ends now and its broker credential is
    revoked (it can no longer connect once the broker has reloaded).

    Raises:
        EnrollmentError: (404) no such device in the tenant; (409) already removed.
    """
    row = await conn.fetchrow(
        "SELECT removed_at FROM devices WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant,
        device_id,
    )
    if row is None:
        raise EnrollmentError(404, f"no device {device_id!r}")
    if row["removed_at"] is not None:
        raise EnrollmentError(409, f"device {device_id!r} was already removed")
    await end_assignment(conn, device_id, datetime.now(UTC))
    await revoke_credentials(conn, device_id)
    await conn.execute(
        "UPDATE devices SET removed_at = now(), version = version + 1 WHERE id = $1", device_id
    )


async def swap_device(
    conn: asyncpg.Connection, tenant: str, old: str, new: str
) -> tuple[uuid.UUID, datetime]:
    """Put device ``new`` in ``old``'s vehicle at the same instant ``old`` leaves it, and
    revoke ``old``'s credential: the vehicle's history goes on without a gap or overlap.

    Returns the vehicle and the instant. Raises EnrollmentError (404: unknown device; 409:
    ``old`` is in no vehicle, ``new`` is removed, or they are the same device).
    """
    rows = await conn.fetch(
        "SELECT id, removed_at FROM devices WHERE tenant_id = $1 AND id = ANY($2::text[]) "
        "FOR UPDATE",
        tenant,
        [old, new],
    )
    found = {r["id"]: r for r in rows}
    for device_id in (old, new):
        if device_id not in found:
            raise EnrollmentError(404, f"no device {device_id!r}")
    if old == new:
        raise EnrollmentError(409, "a device cannot replace itself")
    if found[new]["removed_at"] is not None:
        raise EnrollmentError(409, f"device {new!r} was removed; enroll a new device")
    vehicle_id = await conn.fetchval(
        "SELECT vehicle_id FROM device_assignments WHERE device_id = $1 AND valid_to IS NULL",
        old,
    )
    if vehicle_id is None:
        raise EnrollmentError(409, f"device {old!r} is in no vehicle")
    at = datetime.now(UTC)
    await end_assignment(conn, old, at)
    await end_assignment(conn, new, at)
    await revoke_credentials(conn, old)
    try:
        await registry.assign_device(conn, new, vehicle_id, at)
    except registry.RegistryError as exc:
        raise EnrollmentError(409, str(exc)) from None
    return vehicle_id, at


async def sync_broker(conn: asyncpg.Connection | asyncpg.Pool, settings: CloudSettings) -> bool:
    """Rewrite mosquitto's password file and ACL from the registry and make it reload, where
    FLEETLINK_BROKER_PASSWD_FILE and _ACL_FILE are set; return whether files were written.

    Raises:
        BrokerFilesError: a file cannot be written or the broker cannot be signalled.
    """
    if settings.broker_passwd_file is None or settings.broker_acl_file is None:
        return False
    write_files(
        await live_logins(conn),
        settings.broker_passwd_file,
        settings.broker_acl_file,
        settings.service_mqtt_user(),
        settings.broker_service_passwd_file,
    )
    if settings.broker_pid_file is not None:
        reload_broker(settings.broker_pid_file)
    return True


def token_lifetime(settings: CloudSettings, hours: float | None) -> float:
    """Return the lifetime in hours of a new token: ``hours`` or the configured default."""
    return hours if hours is not None else settings.enrollment_token_hours
