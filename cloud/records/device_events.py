"""The one filter over the ``events`` table (what devices sent: alerts, escalations,
anomalies, trouble codes, trips), shared by the per-vehicle event list, the DTC history and
the events CSV export so that each reads the same rows the same way."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events: the tenant's, optionally one vehicle's, of some types and one severity,
    from ``since`` (inclusive) to ``until`` (exclusive)."""

    tenant: str
    vehicle_id: uuid.UUID | None = None
    types: Sequence[str] | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, args: list[Any], alias: str = "e") -> str:
        """Return the SQL condition over ``alias`` (``events``), appending its parameters to
        ``args`` (numbered after those already there)."""

        def param(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        conditions = [f"{alias}.tenant_id = {param(self.tenant)}"]
        if self.vehicle_id is not None:
            conditions.append(f"{alias}.vehicle_id = {param(self.vehicle_id)}")
        if self.types is not None:
            conditions.append(f"{alias}.type = ANY ({param(list(self.types))}::text[])")
        if self.severity is not None:
            conditions.append(f"{alias}.severity = {param(self.severity)}")
        if self.since is not None:
            conditions.append(f"{alias}.ts >= {param(self.since)}")
        if self.until is not None:
            conditions.append(f"{alias}.ts < {param(self.until)}")
        return " AND ".join(conditions)
