"""Enter, exit and dwell events of vehicles and geofences, computed from committed positions.

The ingest hands each committed batch's positions over a bounded queue (never waiting); one
task evaluates them in order per vehicle against the tenant's fences. Each vehicle keeps a
cursor (the newest position evaluated) and its presence per fence in the database, so a
restart resumes where it stopped, and a position older than the cursor (late data) is
ignored: crossings are told in the order they are learnt, never rewritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.geofences.fences import Fence, FenceSet, load_fences
from fleetlink.cloud.ingest.supervision import SupervisedTask
from fleetlink.cloud.live.relay import LivePublisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Positions:
    """The positions (time, latitude, longitude) of one vehicle from one committed batch."""

    tenant: str
    vehicle: uuid.UUID
    device: str
    points: list[tuple[datetime, float, float]]


@dataclass(frozen=True, slots=True)
class Crossing:
    type: str
    fence: Fence
    ts: datetime
    lat: float
    lon: float
    inside_s: float | None = None

    @property
    def severity(self) -> str:
        return "warning" if self.type == "geofence.dwell" else "info"


def crossings(
    fences: FenceSet,
    presence: dict[uuid.UUID, tuple[datetime, bool]],
    points: list[tuple[datetime, float, float]],
) -> list[Crossing]:
    """Walk ``points`` (in time order) and return the crossings; ``presence`` (fence id ->
    (entered at, dwell raised)) is updated in place."""
    by_id = {f.id: f for f in fences.fences}
    for gone in set(presence) - set(by_id):
        del presence[gone]
    found: list[Crossing] = []
    for ts, lat, lon in points:
        inside = {f.id for f in fences.containing(lat, lon)}
        for fence_id in sorted(inside - set(presence)):
            presence[fence_id] = (ts, False)
            found.append(Crossing("geofence.enter", by_id[fence_id], ts, lat, lon))
        for fence_id in sorted(set(presence) - inside):
            entered, _ = presence.pop(fence_id)
            found.append(
                Crossing(
                    "geofence.exit", by_id[fence_id], ts, lat, lon, (ts - entered).total_seconds()
                )
            )
        for fence_id in sorted(inside):
            fence = by_id[fence_id]
            entered, raised = presence[fence_id]
            stayed = (ts - entered).total_seconds()
            if fence.dwell_s is not None and not raised and stayed >= fence.dwell_s:
                presence[fence_id] = (entered, True)
                found.append(Crossing("geofence.dwell", fence, ts, lat, lon, stayed))
    return found


class GeofenceMonitor:
    """Evaluates positions in the background; ``counters`` tells what it did and dropped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        hub: LivePublisher | None = None,
        queue_size: int = 10_000,
        cache_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._queue: asyncio.Queue[Positions] = asyncio.Queue(queue_size)
        self._cache: dict[str, tuple[float, FenceSet]] = {}
        self._cache_s = cache_s
        self.counters: Counter[str] = Counter()
        self._task = SupervisedTask("geofence monitor", self._run, self.counters)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    def offer(self, positions: Positions) -> None:
        """Queue positions for evaluation; when the queue is full they are counted, not kept."""
        try:
            self._queue.put_nowait(positions)
        except asyncio.QueueFull:
            self.counters["positions_dropped"] += len(positions.points)

    def forget(self, tenant: str) -> None:
        """Reload the tenant's fences before the next evaluation (they changed)."""
        self._cache.pop(tenant, None)

    async def idle(self) -> None:
        """Wait until everything offered so far has been evaluated."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                delay = 0.2
                while True:
                    try:
                        await self.evaluate(item)
                        break
                    except DATABASE_UNAVAILABLE:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                    except asyncpg.ForeignKeyViolationError:
                        self.forget(item.tenant)  # a fence was deleted meanwhile
            finally:
                self._queue.task_done()

    async def _fences(self, conn: asyncpg.Connection, tenant: str) -> FenceSet:
        cached = self._cache.get(tenant)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        fences = await load_fences(conn, tenant)
        self._cache[tenant] = (time.monotonic(), fences)
        return fences

    async def evaluate(self, item: Positions) -> list[dict[str, Any]]:
        """Evaluate one batch of positions; return the inbox items it raised."""
        async with self._pool.acquire() as conn:
            fences = await self._fences(conn, item.tenant)
            if not fences.fences:
                return []
            async with conn.transaction():
                cursor = await conn.fetchval(
                    "SELECT ts FROM geofence_cursor WHERE vehicle_id = $1 FOR UPDATE",
                    item.vehicle,
                )
                points = sorted(p for p in item.points if cursor is None or p[0] > cursor)
                if not points:
                    self.counters["positions_late"] += len(item.points)
                    return []
                presence = {
                    r["geofence_id"]: (r["entered_at"], r["dwell_raised"])
                    for r in await conn.fetch(
                        "SELECT geofence_id, entered_at, dwell_raised FROM geofence_presence "
                        "WHERE vehicle_id = $1",
                        item.vehicle,
                    )
                }
                found = crossings(fences, presence, points)
                await conn.execute(
                    "DELETE FROM geofence_presence WHERE vehicle_id = $1", item.vehicle
                )
                await conn.executemany(
                    "INSERT INTO geofence_presence (tenant_id, vehicle_id, geofence_id, "
                    "entered_at, dwell_raised) VALUES ($1, $2, $3, $4, $5)",
                    [(item.tenant, item.vehicle, f, e, d) for f, (e, d) in presence.items()],
                )
                await conn.execute(
                    """INSERT INTO geofence_cursor (tenant_id, vehicle_id, ts) VALUES ($1, $2, $3)
                       ON CONFLICT (vehicle_id) DO UPDATE SET ts = EXCLUDED.ts""",
                    item.tenant,
                    item.vehicle,
                    points[-1][0],
                )
                raised = [await self._raise(conn, item, c) for c in found]
        self.counters["positions"] += len(points)
        self.counters["crossings"] += len(raised)
        if self._hub is not None:
            for entry in raised:
                self._hub.publish(item.tenant, "inbox", entry, str(item.vehicle))
        return raised

    @staticmethod
    async def _raise(
        conn: asyncpg.Connection, item: Positions, crossing: Crossing
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "geofence_id": str(crossing.fence.id),
            "geofence": crossing.fence.name,
            "latitude": crossing.lat,
            "longitude": crossing.lon,
        }
        if crossing.inside_s is not None:
            data["inside_s"] = round(crossing.inside_s, 1)
        item_id = await conn.fetchval(
            """INSERT INTO inbox_items (tenant_id, source, type, severity, vehicle_id, device_id,
                                        ts, data)
               VALUES ($1, 'geofence', $2, $3, $4, $5, $6, $7::text::jsonb) RETURNING id""",
            item.tenant,
            crossing.type,
            crossing.severity,
            item.vehicle,
            item.device,
            crossing.ts,
            json.dumps(data),
        )
        payload = {
            **data,
            "inbox_item_id": str(item_id),
            "vehicle_id": str(item.vehicle),
            "device_id": item.device,
            "ts": crossing.ts.isoformat(),
        }
        await conn.execute(
            "SELECT fleetlink_notify($1, $2, $3, $4::text::jsonb)",
            item.tenant,
            crossing.type,
            crossing.severity,
            json.dumps(payload),
        )
        return {"id": str(item_id), "type": crossing.type, "severity": crossing.severity, **payload}
