"""``/api/v1/vehicles/{vehicle_id}/signals``: latest values and bucketed series.

A series whose bucket and range fit the 1 hour or 1 minute rollup is read from it (the
coarsest that fits); other series, and days whose rollup is pending, from the samples."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.models import (
    EARLIEST_QUERY,
    MAX_SERIES_POINTS,
    LatestSignal,
    LatestSignals,
    Series,
    SeriesBucket,
    SeriesQuery,
    bucket_seconds,
)
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import VEHICLE_ID
from fleetlink.cloud.app_keys import SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.storage.rollups import BUCKET_ORIGIN, ROLLUP_TABLES, rollup_for
from fleetlink.shared.signals import Signal, UnknownSignalError, by_id, by_name

api = ResourceRoutes("signals")
routes = api.routes

_BUCKET_ORIGIN = BUCKET_ORIGIN
# NaN sorts above every number in PostgreSQL, so this excludes NaN and both infinities, which
# the schema's numbers cannot carry (rows stored before the ingest dropped them).
FINITE = "value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
_RAW_SERIES = f"""
    SELECT date_bin($6::interval, ts, $7) AS bucket_start,
           avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count
    FROM samples_between($2, $4, $5)
    WHERE tenant_id = $1 AND signal_id = $3 AND {FINITE}
    GROUP BY 1 ORDER BY 1
    LIMIT $8"""


def _rollup_series(table: str) -> str:
    """The series from ``table`` (a rollup whose width divides the bucket), and from the
    samples of the days in $9 (data landed since their rollup was built)."""
    return f"""
    WITH parts AS (
        SELECT date_bin($6::interval, bucket, $7) AS bucket_start, sum(total) AS total,
               min(min) AS min, max(max) AS max, sum(count)::bigint AS count
        FROM {table}
        WHERE tenant_id = $1 AND vehicle_id = $2 AND signal_id = $3 AND bucket >= $4
          AND bucket < $5 AND NOT ((bucket AT TIME ZONE 'UTC')::date = ANY($9::date[]))
        GROUP BY 1
        UNION ALL
        SELECT date_bin($6::interval, ts, $7), sum(value), min(value), max(value), count(*)
        FROM samples_between($2, $4, $5)
        WHERE tenant_id = $1 AND signal_id = $3 AND {FINITE}
          AND (ts AT TIME ZONE 'UTC')::date = ANY($9::date[])
        GROUP BY 1)
    SELECT bucket_start, sum(total)::float8 / sum(count)::float8 AS avg, min(min) AS min,
           max(max) AS max, sum(count)::bigint AS count
    FROM parts GROUP BY 1 ORDER BY 1
    LIMIT $8"""


def _aligned(ts: datetime, width_s: int) -> bool:
    return (ts - _BUCKET_ORIGIN).total_seconds() % width_s == 0


SIGNAL_PARAM = {
    "description": "VSS name (Vehicle.Speed) or numeric catalog id",
    "schema": {"type": "string"},
}


async def _require_vehicle(conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID) -> None:
    found = await conn.fetchval(
        "SELECT 1 FROM vehicles WHERE tenant_id = $1 AND id = $2", tenant, vehicle_id
    )
    if found is None:
        raise ProblemError(404, f"no vehicle {vehicle_id}")


def _signal(ref: str) -> Signal:
    try:
        return by_id(int(ref)) if ref.isascii() and ref.isdigit() else by_name(ref)
    except UnknownSignalError:
        raise ProblemError(404, f"no signal {ref!r} in the catalog") from None


@api.get(
    "/api/v1/vehicles/{vehicle_id}/signals/latest",
    summary="The newest value of every signal of a vehicle",
    response=LatestSignals,
    permission=Permission.SIGNALS_READ,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def latest_signals(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    tenant = principal_of(request).tenant_id
    accept_future_s = request.app[SETTINGS].ingest_accept_future_s
    async with tenant_transaction(request) as conn:
        body = await latest_values(conn, tenant, vehicle_id, accept_future_s)
    return web.json_response(text=body.model_dump_json())


async def latest_values(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID, accept_future_s: float
) -> LatestSignals:
    """Return the newest value of each catalog signal of the vehicle; raise ProblemError(404)
    for a vehicle the tenant does not have."""
    await _require_vehicle(conn, tenant, vehicle_id)
    rows = await conn.fetch(
        "SELECT signal_id, ts, value FROM latest_signals "
        f"WHERE tenant_id = $1 AND vehicle_id = $2 AND {FINITE} "
        "AND ts <= now() + $3::interval ORDER BY signal_id",
        tenant,
        vehicle_id,
        # The future beyond the ingest's clock window is not "latest" (docs/security.md).
        timedelta(seconds=accept_future_s),
    )
    signals = []
    for r in rows:
        try:
            entry = by_id(r["signal_id"])
        except UnknownSignalError:
            continue
        signals.append(
            LatestSignal(
                signal_id=entry.id, name=entry.name, unit=entry.unit, value=r["value"], ts=r["ts"]
            )
        )
    return LatestSignals(vehicle_id=vehicle_id, signals=signals)


@api.get(
    "/api/v1/vehicles/{vehicle_id}/signals/{signal}/series",
    summary="A signal's values aggregated per time bucket (avg, min, max, count)",
    response=Series,
    permission=Permission.SIGNALS_READ,
    query=SeriesQuery,
    path_params={"vehicle_id": VEHICLE_ID, "signal": SIGNAL_PARAM},
    errors=(400, 404, 422),
)
async def signal_series(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    signal = _signal(request.match_info["signal"])
    query = query_model(request, SeriesQuery)
    to = query.to or datetime.now(UTC)
    start = query.from_ or max(to - timedelta(hours=1), EARLIEST_QUERY)
    if start >= to:
        raise ProblemError(422, "'from' must be before 'to'")
    step = bucket_seconds(query.bucket)
    tenant = principal_of(request).tenant_id
    width = rollup_for(step)
    if width is not None and not (_aligned(start, width) and _aligned(to, width)):
        width = None
    async with tenant_transaction(request) as conn:
        await _require_vehicle(conn, tenant, vehicle_id)
        args = [tenant, vehicle_id, signal.id, start, to, timedelta(seconds=step), _BUCKET_ORIGIN]
        args.append(MAX_SERIES_POINTS + 1)
        if width is None:
            rows = await conn.fetch(_RAW_SERIES, *args)
        else:
            # Days not yet rolled up since data last landed are read from the samples.
            pending = await conn.fetch(
                "SELECT day FROM trip_dirty WHERE vehicle_id = $1 AND day >= $2 AND day <= $3",
                vehicle_id,
                start.astimezone(UTC).date(),
                to.astimezone(UTC).date(),
            )
            rows = await conn.fetch(
                _rollup_series(ROLLUP_TABLES[width]), *args, [r["day"] for r in pending]
            )
    if len(rows) > MAX_SERIES_POINTS:
        raise ProblemError(
            422,
            f"more than {MAX_SERIES_POINTS} buckets hold data: widen the bucket or shorten "
            "the range",
        )
    body = Series(
        vehicle_id=vehicle_id,
        signal_id=signal.id,
        name=signal.name,
        unit=signal.unit,
        from_=start,
        to=to,
        bucket_s=step,
        buckets=[SeriesBucket.model_validate(dict(r)) for r in rows],
    )
    return web.json_response(text=body.model_dump_json(by_alias=True))
