"""A vehicle's failure risk now, from its recent days in the database and its due list."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from fleetlink.cloud.maintenance.risk import Risk, RiskModel, features
from fleetlink.cloud.maintenance.schedule import DueItem
from fleetlink.cloud.maintenance.vehicle_days import day_summaries


async def vehicle_risk(
    conn: asyncpg.Connection,
    tenant: str,
    vehicle_id: uuid.UUID,
    now: datetime,
    due: Sequence[DueItem],
    model: RiskModel,
) -> Risk:
    """Return the model's assessment of ``vehicle_id``; ``due`` is the tenant's due list (the
    largest used fraction of the vehicle's plans is one feature)."""
    days = await day_summaries(conn, tenant, vehicle_id, now)
    used = max(
        (i.state.used_fraction or 0.0 for i in due if i.vehicle_id == vehicle_id), default=0.0
    )
    return model.assess(features(days, now.date(), used))
