"""CSV exports of trips, driver scores and events for a tenant and a range of days.

The same functions serve the API (on the tenant's row-level-secured connection) and the
scheduled reports (on the owner's connection); every query names the tenant itself. Text
cells that a spreadsheet would run as a formula are prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from fleetlink.cloud.records.device_events import EventFilter
from fleetlink.cloud.scoring.activity import DRIVER_OF_TRIP_SQL, activity_by_driver
from fleetlink.cloud.scoring.rules import rules_of
from fleetlink.cloud.scoring.scorecard import scorecard

MAX_EXPORT_ROWS = 200_000
REPORTS = ("trips", "scores", "events")


class ExportTooLargeError(ValueError):
    """Raised when an export would exceed MAX_EXPORT_ROWS; narrow the range."""


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _bounded(rows: Sequence[Any]) -> Sequence[Any]:
    if len(rows) > MAX_EXPORT_ROWS:
        raise ExportTooLargeError(
            f"more than {MAX_EXPORT_ROWS} rows: export a shorter range of days"
        )
    return rows


TRIP_HEADER = (
    "trip_id",
    "vehicle_id",
    "vehicle",
    "driver_id",
    "driver",
    "started_at",
    "ended_at",
    "duration_s",
    "distance_km",
    "idle_s",
    "max_speed_kmh",
    "fuel_used_l",
    "engine_hours",
)


async def trips_csv(
    conn: asyncpg.Connection,
    tenant: str,
    first: date,
    last: date,
    vehicle: uuid.UUID | None = None,
    driver: uuid.UUID | None = None,
) -> str:
    """Return the trips of ``first``..``last`` as CSV, oldest first."""
    rows = await conn.fetch(
        f"""SELECT t.id, t.vehicle_id, v.name AS vehicle, a.driver_id, d.name AS driver,
                   t.started_at, t.ended_at, t.duration_s, t.distance_km, t.idle_s,
                   t.max_speed_kmh, t.fuel_used_l, t.engine_hours
            FROM trips t {DRIVER_OF_TRIP_SQL}
            JOIN vehicles v ON v.id = t.vehicle_id
            LEFT JOIN drivers d ON d.id = a.driver_id
            WHERE t.tenant_id = $1 AND t.day >= $2 AND t.day < $3
              AND ($4::uuid IS NULL OR t.vehicle_id = $4)
              AND ($5::uuid IS NULL OR a.driver_id = $5)
            ORDER BY t.started_at, t.id LIMIT {MAX_EXPORT_ROWS + 1}""",
        tenant,
        first,
        last + timedelta(days=1),
        vehicle,
        driver,
    )
    return _csv(TRIP_HEADER, (tuple(r.values()) for r in _bounded(rows)))


async def scores_csv(conn: asyncpg.Connection, tenant: str, first: date, last: date) -> str:
    """Return one row per driver who drove in ``first``..``last``: score, band, distance and
    points and event count per event type."""
    rules = await rules_of(conn, tenant)
    activity = await activity_by_driver(conn, tenant, first, last + timedelta(days=1))
    names = {
        r["id"]: r["name"]
        for r in await conn.fetch("SELECT id, name FROM drivers WHERE tenant_id = $1", tenant)
    }
    cards = [scorecard(d, first, last, a, rules) for d, a in activity.items()]
    cards.sort(key=lambda c: (c.score is None, -(c.score or 0), str(c.driver_id)))
    types = sorted({line.type for c in cards for line in c.lines})
    header = [
        "driver_id",
        "driver",
        "from",
        "to",
        "trips",
        "distance_km",
        "points",
        "points_per_100km",
        "score",
        "band",
    ]
    header += [f"{t}_events" for t in types] + [f"{t}_points" for t in types]
    rows = []
    for c in cards:
        lines = {line.type: line for line in c.lines}
        rows.append(
            [
                c.driver_id,
                names.get(c.driver_id, ""),
                first,
                last,
                c.trips,
                c.distance_km,
                c.points,
                c.points_per_100km,
                c.score,
                c.band,
            ]
            + [lines[t].events if t in lines else 0 for t in types]
            + [lines[t].points if t in lines else 0 for t in types]
        )
    return _csv(header, rows)


EVENT_HEADER = ("event_id", "ts", "vehicle_id", "vehicle", "device_id", "type", "severity", "data")


async def events_csv(
    conn: asyncpg.Connection,
    tenant: str,
    first: date,
    last: date,
    vehicle: uuid.UUID | None = None,
) -> str:
    """Return the events the devices sent in ``first``..``last`` as CSV, oldest first."""
    start = datetime.combine(first, datetime.min.time()).replace(tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time()).replace(tzinfo=UTC)
    args: list[Any] = []
    where = EventFilter(tenant, vehicle, since=start, until=end).where(args)
    rows = await conn.fetch(
        f"""SELECT e.id, e.ts, e.vehicle_id, v.name, e.device_id, e.type, e.severity,
                   e.data::text
            FROM events e LEFT JOIN vehicles v ON v.id = e.vehicle_id
            WHERE {where}
            ORDER BY e.ts, e.id LIMIT {MAX_EXPORT_ROWS + 1}""",
        *args,
    )
    return _csv(EVENT_HEADER, (tuple(r.values()) for r in _bounded(rows)))


async def report_csv(
    conn: asyncpg.Connection, report: str, tenant: str, first: date, last: date
) -> str:
    """Return the named report (one of REPORTS) for ``first``..``last``."""
    if report == "trips":
        return await trips_csv(conn, tenant, first, last)
    if report == "scores":
        return await scores_csv(conn, tenant, first, last)
    if report == "events":
        return await events_csv(conn, tenant, first, last)
    raise ValueError(f"no report {report!r}; one of {', '.join(REPORTS)}")
