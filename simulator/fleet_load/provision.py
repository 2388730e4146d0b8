"""Register a load fleet in the cloud's database in bulk: tenant, devices, vehicles, assignments.

Devices are ``{prefix}{n:06d}``; each gets a vehicle of its own assigned from two days ago,
so its samples are stored against a vehicle as in a real fleet. Existing rows are kept, so a
larger fleet can be added on top of a smaller one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg


def device_ids(prefix: str, count: int) -> list[str]:
    """Return the ids of a load fleet of ``count`` devices."""
    return [f"{prefix}{n:06d}" for n in range(count)]


async def provision(conn: asyncpg.Connection, tenant: str, ids: list[str]) -> int:
    """Register ``tenant`` and every device in ``ids`` not yet registered; return how many
    devices were added. Raises asyncpg errors if the schema is not migrated."""
    await conn.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant
    )
    known = {
        r["id"] for r in await conn.fetch("SELECT id FROM devices WHERE id = ANY($1::text[])", ids)
    }
    new = [d for d in ids if d not in known]
    if not new:
        return 0
    vehicles = [uuid.uuid4() for _ in new]
    since = datetime.now(UTC) - timedelta(days=2)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO devices (id, tenant_id, name) "
            "SELECT d, $1, d FROM unnest($2::text[]) AS d",
            tenant,
            new,
        )
        await conn.execute(
            "INSERT INTO vehicles (id, tenant_id, name) "
            "SELECT v, $1, 'load ' || d FROM unnest($2::uuid[], $3::text[]) AS u(v, d)",
            tenant,
            vehicles,
            new,
        )
        await conn.execute(
            "INSERT INTO device_assignments (tenant_id, device_id, vehicle_id, valid_from) "
            "SELECT $1, d, v, $4 FROM unnest($2::text[], $3::uuid[]) AS u(d, v)",
            tenant,
            new,
            vehicles,
            since,
        )
    return len(new)
