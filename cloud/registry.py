"""The registry of tenants, devices and vehicles, and which device sits in which vehicle.

Each function takes an asyncpg connection (or pool) so callers choose the transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

import asyncpg

from fleetlink.shared.signing import new_key
from fleetlink.shared.topics import TopicError, check_segment

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


class RegistryError(ValueError):
    """Raised when a registry change is refused: unknown or duplicate ids, cross-tenant links."""


@dataclass(frozen=True, slots=True)
class Assignment:
    device_id: str
    vehicle_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None


def _segment(value: str, what: str) -> str:
    try:
        return check_segment(value, what)
    except TopicError as exc:
        raise RegistryError(str(exc)) from None


async def create_tenant(db: Executor, tenant_id: str, name: str | None = None) -> str:
    """Create a tenant and return its id; raise RegistryError if it exists or the id is invalid."""
    _segment(tenant_id, "tenant id")
    try:
        await db.execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, name or tenant_id
        )
    except asyncpg.UniqueViolationError:
        raise RegistryError(f"tenant {tenant_id!r} already exists") from None
    return tenant_id


async def ensure_tenant(db: Executor, tenant_id: str, name: str | None = None) -> str:
    """Create the tenant unless it exists; return its id."""
    _segment(tenant_id, "tenant id")
    await db.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        tenant_id,
        name or tenant_id,
    )
    return tenant_id


async def create_device(db: Executor, tenant_id: str, device_id: str, name: str = "") -> str:
    """Register a device for a tenant and return its id.

    Raises RegistryError if the id is invalid, already registered, or the tenant is unknown.
    """
    _segment(device_id, "device id")
    try:
        await db.execute(
            "INSERT INTO devices (id, tenant_id, name) VALUES ($1, $2, $3)",
            device_id,
            tenant_id,
            name,
        )
    except asyncpg.UniqueViolationError:
        raise RegistryError(f"device {device_id!r} is already registered") from None
    except asyncpg.ForeignKeyViolationError:
        raise RegistryError(f"tenant {tenant_id!r} does not exist") from None
    return device_id


async def issue_device_key(db: Executor, device_id: str) -> bytes:
    """Create (or replace) the device's key for signed acks and commands, and return it.

    The key is shown to the operator once and goes into the device's config as
    ``device.key``; replacing it makes the device ignore acks until its config has the new one.
    Raises RegistryError if the device is not registered.
    """
    key = new_key()
    try:
        await db.execute(
            "INSERT INTO device_keys (device_id, key) VALUES ($1, $2) ON CONFLICT (device_id) "
            "DO UPDATE SET key = EXCLUDED.key, created_at = now()",
            device_id,
            key,
        )
    except asyncpg.ForeignKeyViolationError:
        raise RegistryError(f"device {device_id!r} is not registered") from None
    return key


async def create_vehicle(
    db: Executor,
    tenant_id: str,
    name: str,
    vin: str | None = None,
    vehicle_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Create a vehicle and return its UUID.

    Raises RegistryError for an unknown tenant, an invalid VIN or an existing id.
    """
    vehicle_id = vehicle_id or uuid.uuid4()
    try:
        await db.execute(
            "INSERT INTO vehicles (id, tenant_id, name, vin) VALUES ($1, $2, $3, $4)",
            vehicle_id,
            tenant_id,
            name,
            vin.upper() if vin else None,
        )
    except asyncpg.ForeignKeyViolationError:
        raise RegistryError(f"tenant {tenant_id!r} does not exist") from None
    except asyncpg.CheckViolationError:
        raise RegistryError(
            f"VIN {vin!r} is not 17 characters of A-Z (no I, O, Q) and 0-9"
        ) from None
    except asyncpg.UniqueViolationError:
        raise RegistryError(f"vehicle {vehicle_id} already exists") from None
    return vehicle_id


async def assign_device(
    conn: asyncpg.Connection,
    device_id: str,
    vehicle_id: uuid.UUID,
    at: datetime | None = None,
) -> Assignment:
    """Put a device in a vehicle from ``at`` (default now), closing its current assignment.

    Returns the new assignment. Raises RegistryError if the device or vehicle is unknown, they
    belong to different tenants, or ``at`` is not after the start of the current assignment.
    """
    at = at or datetime.now(UTC)
    async with conn.transaction():
        device = await conn.fetchrow(
            "SELECT tenant_id FROM devices WHERE id = $1 FOR UPDATE", device_id
        )
        if device is None:
            raise RegistryError(f"device {device_id!r} is not registered")
        vehicle = await conn.fetchrow("SELECT tenant_id FROM vehicles WHERE id = $1", vehicle_id)
        if vehicle is None:
            raise RegistryError(f"vehicle {vehicle_id} does not exist")
        if vehicle["tenant_id"] != device["tenant_id"]:
            raise RegistryError(
                f"device {device_id!r} and vehicle {vehicle_id} belong to different tenants"
            )
        try:
            await conn.execute(
                "UPDATE device_assignments SET valid_to = $2 "
                "WHERE device_id = $1 AND valid_to IS NULL",
                device_id,
                at,
            )
        except asyncpg.CheckViolationError:
            raise RegistryError(
                f"device {device_id!r} has a current assignment starting after {at.isoformat()}"
            ) from None
        await conn.execute(
            "INSERT INTO device_assignments (tenant_id, device_id, vehicle_id, valid_from) "
            "VALUES ($1, $2, $3, $4)",
            device["tenant_id"],
            device_id,
            vehicle_id,
            at,
        )
    return Assignment(device_id, vehicle_id, at, None)


async def device_assignments(db: Executor, device_id: str) -> list[Assignment]:
    """Return a device's assignments, oldest first."""
    rows = await db.fetch(
        "SELECT device_id, vehicle_id, valid_from, valid_to FROM device_assignments "
        "WHERE device_id = $1 ORDER BY valid_from",
        device_id,
    )
    return [Assignment(**dict(r)) for r in rows]
