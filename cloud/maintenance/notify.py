"""``vehicle.maintenance_scheduled``: raised once when a (plan, vehicle) turns due or overdue.

Notifications are queued for the tenant's webhooks and email rules
(:func:`fleetlink.cloud.notify.webhooks.enqueue`) in the same transaction as the state change
that raised them; the dispatchers deliver them with retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from fleetlink.cloud.app_keys import POOL, SETTINGS
from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.maintenance.schedule import DueItem, due_items
from fleetlink.cloud.notify.webhooks import enqueue

log = logging.getLogger(__name__)

MAINTENANCE_SCHEDULED = "vehicle.maintenance_scheduled"
SCAN_EVERY_S = 600.0


def _payload(item: DueItem) -> dict[str, object]:
    return {
        "plan_id": str(item.plan_id),
        "plan": item.plan_name,
        "vehicle_id": str(item.vehicle_id),
        "vehicle": item.vehicle_name,
        "status": item.state.status,
        "due_by": item.state.due_by,
        "remaining_km": item.state.remaining_km,
        "remaining_hours": item.state.remaining_hours,
        "remaining_days": item.state.remaining_days,
    }


async def record_due_states(
    conn: asyncpg.Connection, tenant: str, now: datetime | None = None
) -> int:
    """Store the current status of each (plan, vehicle) and queue a notification for each that
    has become due or overdue since the last scan; return how many were queued.

    Run it in a transaction: the new states and their notifications commit together.
    """
    items = [i for i in await due_items(conn, tenant, now) if i.state.status != "unknown"]
    previous = {
        (r["plan_id"], r["vehicle_id"]): r["status"]
        for r in await conn.fetch(
            "SELECT plan_id, vehicle_id, status FROM maintenance_due_state WHERE tenant_id = $1",
            tenant,
        )
    }
    changed = [i for i in items if previous.get((i.plan_id, i.vehicle_id)) != i.state.status]
    await conn.executemany(
        """INSERT INTO maintenance_due_state (tenant_id, plan_id, vehicle_id, status)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (plan_id, vehicle_id) DO UPDATE SET status = EXCLUDED.status,
                                                           changed_at = now()""",
        [(tenant, i.plan_id, i.vehicle_id, i.state.status) for i in changed],
    )
    raised = [
        i
        for i in changed
        if i.state.status in ("due", "overdue")
        and previous.get((i.plan_id, i.vehicle_id)) in (None, "ok")
    ]
    for item in raised:
        severity = "warning" if item.state.status == "overdue" else "info"
        await enqueue(conn, tenant, MAINTENANCE_SCHEDULED, _payload(item), severity)
    return len(raised)


async def scan_all_tenants(pool: asyncpg.Pool, now: datetime | None = None) -> int:
    """Run :func:`record_due_states` for every tenant with a plan; return notifications queued."""
    now = now or datetime.now(UTC)
    queued = 0
    async with pool.acquire() as conn:
        tenants = await conn.fetch("SELECT DISTINCT tenant_id FROM maintenance_plans")
        for row in tenants:
            async with conn.transaction():
                queued += await record_due_states(conn, row["tenant_id"], now)
    return queued


async def due_scanner(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx task that scans every SCAN_EVERY_S; a failed scan is logged and retried."""

    async def loop() -> None:
        while True:
            try:
                queued = await scan_all_tenants(app[POOL])
                if queued:
                    log.info("maintenance scan queued %d notification(s)", queued)
            except (asyncpg.PostgresError, *DATABASE_UNAVAILABLE):
                log.exception("maintenance scan failed; retrying in %.0f s", SCAN_EVERY_S)
            await asyncio.sleep(SCAN_EVERY_S)

    if not app[SETTINGS].background_jobs:
        yield
        return
    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
