"""``/api/v1/geofences``: the tenant's geofences as GeoJSON Features (polygons, and circles as
a Point with ``radius_m``), speed zones among them, and the speed limit at a point.

Every change bumps the tenant's fence-set version and pushes the set to the devices that
report positions. Crossings (``geofence.enter``, ``geofence.exit``, ``geofence.dwell``) land in
the inbox (``/api/v1/inbox?source=geofence``), on the live stream and on webhooks.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import json_body, require_if_match
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import GEOFENCE_MONITOR, SETTINGS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.geofences.fences import load_fences, speed_limit_at
from fleetlink.cloud.geofences.geometry import GeometryError, Shape, parse_shape
from fleetlink.cloud.geofences.push import devices_with_positions, fence_messages, publish_fences
from fleetlink.cloud.ingest.protocol import parse_mqtt_url

api = ResourceRoutes("geofences")
routes = api.routes

GEOFENCE_ID = {"description": "Geofence UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_FENCES = 1_000

Position = Annotated[list[float], Field(min_length=2, max_length=2)]


class PolygonGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["Polygon"]
    coordinates: list[Annotated[list[Position], Field(min_length=4, max_length=10_000)]] = Field(
        min_length=1, max_length=100, description="Linear rings of [longitude, latitude]"
    )


class PointGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["Point"]
    coordinates: Position = Field(description="[longitude, latitude] of a circle's centre")


Geometry = Annotated[PolygonGeometry | PointGeometry, Field(discriminator="type")]


class GeofenceProperties(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    radius_m: float | None = Field(None, gt=0, le=500_000, description="A circle's radius")
    speed_limit_kmh: float | None = Field(
        None, gt=0, le=300, description="Makes the fence a speed zone"
    )
    dwell_s: int | None = Field(
        None, ge=1, le=7 * 86_400, description="Raise geofence.dwell after this long inside"
    )


class GeofenceIn(BaseModel):
    """A GeoJSON Feature: a Polygon, or a Point with properties.radius_m (a circle)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["Feature"]
    geometry: Geometry
    properties: GeofenceProperties


class GeofenceOutProperties(GeofenceProperties):
    created_at: datetime
    version: int


class Geofence(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: uuid.UUID
    geometry: dict[str, Any]
    properties: GeofenceOutProperties


class GeofenceCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    version: int = Field(description="The fence set's version, as pushed to devices")
    features: list[Geofence]


class Deleted(BaseModel):
    deleted: bool


class PointQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class SpeedLimit(BaseModel):
    speed_limit_kmh: float | None = Field(description="The lowest limit of the zones, or null")


_COLUMNS = "id, name, geometry, radius_m, speed_limit_kmh, dwell_s, created_at, version"


def _geofence(row: asyncpg.Record) -> Geofence:
    geometry = row["geometry"]
    return Geofence(
        id=row["id"],
        geometry=json.loads(geometry) if isinstance(geometry, str) else geometry,
        properties=GeofenceOutProperties(
            name=row["name"],
            radius_m=row["radius_m"],
            speed_limit_kmh=row["speed_limit_kmh"],
            dwell_s=row["dwell_s"],
            created_at=row["created_at"],
            version=row["version"],
        ),
    )


def _shape(body: GeofenceIn) -> Shape:
    try:
        return parse_shape(body.geometry.model_dump(), body.properties.radius_m)
    except GeometryError as exc:
        raise ProblemError(
            422, str(exc), errors=[{"field": "geometry", "message": str(exc)}]
        ) from None


async def _fetch(conn: asyncpg.Connection, tenant: str, geofence_id: uuid.UUID) -> Geofence:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM geofences WHERE tenant_id = $1 AND id = $2", tenant, geofence_id
    )
    if row is None:
        raise ProblemError(404, f"no geofence {geofence_id}")
    return _geofence(row)


def _name_taken() -> ProblemError:
    return ProblemError(
        409,
        "a geofence of that name exists",
        errors=[{"field": "properties.name", "message": "taken"}],
    )


async def _bump_version(conn: asyncpg.Connection, tenant: str) -> int:
    """Raise the fence set's version (in the change's transaction); return it."""
    version: int = await conn.fetchval(
        """INSERT INTO geofence_sets (tenant_id, version) VALUES ($1, 1)
           ON CONFLICT (tenant_id) DO UPDATE SET version = geofence_sets.version + 1
           RETURNING version""",
        tenant,
    )
    return version


async def fences_changed(request: web.Request, tenant: str, version: int) -> None:
    """Tell the monitor to reload and push the committed set to the tenant's devices; call it
    after the transaction of add_geofence or remove_geofence has committed."""
    request.app[GEOFENCE_MONITOR].forget(tenant)
    async with tenant_transaction(request) as conn:
        fences = await load_fences(conn, tenant)
        devices = await devices_with_positions(conn, tenant)
    address = parse_mqtt_url(request.app[SETTINGS].mqtt_url.get_secret_value())
    await publish_fences(address, fence_messages(tenant, devices, version, fences))


@api.get(
    "/api/v1/geofences",
    summary="Every geofence of the tenant, as a GeoJSON FeatureCollection",
    response=GeofenceCollection,
    permission=Permission.GEOFENCES_READ,
)
async def list_geofences(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        collection = await geofence_collection(conn, principal_of(request).tenant_id)
    return web.json_response(text=collection.model_dump_json())


async def geofence_collection(conn: asyncpg.Connection, tenant: str) -> GeofenceCollection:
    """Return every geofence of ``tenant`` (by name) with the fence set's version."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM geofences WHERE tenant_id = $1 ORDER BY name LIMIT $2",
        tenant,
        MAX_FENCES,
    )
    version = await conn.fetchval("SELECT version FROM geofence_sets WHERE tenant_id = $1", tenant)
    return GeofenceCollection(version=version or 0, features=[_geofence(r) for r in rows])


@api.get(
    "/api/v1/geofences/speed-limit",
    summary="The speed limit the tenant's speed zones set at a point",
    response=SpeedLimit,
    permission=Permission.GEOFENCES_READ,
    query=PointQuery,
    errors=(400,),
)
async def get_speed_limit(request: web.Request) -> web.Response:
    point = query_model(request, PointQuery)
    async with tenant_transaction(request) as conn:
        limit = await speed_limit_at(
            conn, principal_of(request).tenant_id, point.latitude, point.longitude
        )
    return web.json_response(text=SpeedLimit(speed_limit_kmh=limit).model_dump_json())


@api.post(
    "/api/v1/geofences",
    summary="Add a geofence (a GeoJSON Feature)",
    response=Geofence,
    permission=Permission.GEOFENCES_WRITE,
    body=GeofenceIn,
    status=201,
    errors=(400, 409, 415, 422),
)
async def create_geofence(request: web.Request) -> web.Response:
    body: GeofenceIn = await json_body(request, GeofenceIn)
    async with tenant_transaction(request) as conn:
        fence, version = await add_geofence(request, conn, body)
    await fences_changed(request, principal_of(request).tenant_id, version)
    return web.json_response(
        text=fence.model_dump_json(), status=201, headers={"ETag": f'"{fence.properties.version}"'}
    )


async def add_geofence(
    request: web.Request, conn: asyncpg.Connection, body: GeofenceIn
) -> tuple[Geofence, int]:
    """Store ``body`` as a new geofence of the caller's tenant (audited) and bump the fence
    set's version; return the fence and that version (for fences_changed after commit).

    Raises ProblemError 422 (a shape that does not fit, with ``errors`` naming ``geometry``)
    or 409 (the name is taken, or the tenant has MAX_FENCES already).
    """
    shape = _shape(body)
    tenant = principal_of(request).tenant_id
    geofence_id = uuid.uuid4()
    if await conn.fetchval("SELECT count(*) FROM geofences WHERE tenant_id = $1", tenant) >= (
        MAX_FENCES
    ):
        raise ProblemError(409, f"a tenant has at most {MAX_FENCES} geofences")
    try:
        # A savepoint: a taken name leaves the caller's transaction usable.
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO geofences (id, tenant_id, name, geometry, radius_m, speed_limit_kmh,
                                          dwell_s, min_lat, max_lat, min_lon, max_lon)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
                geofence_id,
                tenant,
                body.properties.name,
                shape.geometry,
                shape.radius_m,
                body.properties.speed_limit_kmh,
                body.properties.dwell_s,
                shape.bounds.min_lat,
                shape.bounds.max_lat,
                shape.bounds.min_lon,
                shape.bounds.max_lon,
            )
    except asyncpg.UniqueViolationError:
        raise _name_taken() from None
    fence = await _fetch(conn, tenant, geofence_id)
    await record_change(request, conn, "create", "geofence", geofence_id, after=fence)
    return fence, await _bump_version(conn, tenant)


@api.get(
    "/api/v1/geofences/{geofence_id}",
    summary="One geofence (a GeoJSON Feature)",
    response=Geofence,
    permission=Permission.GEOFENCES_READ,
    path_params={"geofence_id": GEOFENCE_ID},
    errors=(400, 404),
)
async def get_geofence(request: web.Request) -> web.Response:
    geofence_id = path_uuid(request, "geofence_id")
    async with tenant_transaction(request) as conn:
        fence = await _fetch(conn, principal_of(request).tenant_id, geofence_id)
    return web.json_response(
        text=fence.model_dump_json(), headers={"ETag": f'"{fence.properties.version}"'}
    )


@api.route(
    "PUT",
    "/api/v1/geofences/{geofence_id}",
    if_match=True,
    summary="Replace a geofence's shape and properties (send If-Match with its ETag)",
    response=Geofence,
    permission=Permission.GEOFENCES_WRITE,
    body=GeofenceIn,
    path_params={"geofence_id": GEOFENCE_ID},
    errors=(400, 404, 409, 412, 415, 422, 428),
)
async def replace_geofence(request: web.Request) -> web.Response:
    geofence_id = path_uuid(request, "geofence_id")
    body: GeofenceIn = await json_body(request, GeofenceIn)
    shape = _shape(body)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        before = await _fetch(conn, tenant, geofence_id)
        require_if_match(request, before.properties.version)
        try:
            await conn.execute(
                """UPDATE geofences SET name = $3, geometry = $4, radius_m = $5,
                          speed_limit_kmh = $6, dwell_s = $7, min_lat = $8, max_lat = $9,
                          min_lon = $10, max_lon = $11, version = version + 1
                   WHERE tenant_id = $1 AND id = $2""",
                tenant,
                geofence_id,
                body.properties.name,
                shape.geometry,
                shape.radius_m,
                body.properties.speed_limit_kmh,
                body.properties.dwell_s,
                shape.bounds.min_lat,
                shape.bounds.max_lat,
                shape.bounds.min_lon,
                shape.bounds.max_lon,
            )
        except asyncpg.UniqueViolationError:
            raise _name_taken() from None
        after = await _fetch(conn, tenant, geofence_id)
        await record_change(
            request, conn, "update", "geofence", geofence_id, before=before, after=after
        )
        version = await _bump_version(conn, tenant)
    await fences_changed(request, tenant, version)
    return web.json_response(
        text=after.model_dump_json(), headers={"ETag": f'"{after.properties.version}"'}
    )


@api.delete(
    "/api/v1/geofences/{geofence_id}",
    summary="Delete a geofence",
    response=Deleted,
    permission=Permission.GEOFENCES_WRITE,
    path_params={"geofence_id": GEOFENCE_ID},
    errors=(400, 404),
)
async def delete_geofence(request: web.Request) -> web.Response:
    geofence_id = path_uuid(request, "geofence_id")
    async with tenant_transaction(request) as conn:
        _, version = await remove_geofence(request, conn, geofence_id)
    await fences_changed(request, principal_of(request).tenant_id, version)
    return web.json_response(text=Deleted(deleted=True).model_dump_json())


async def remove_geofence(
    request: web.Request, conn: asyncpg.Connection, geofence_id: uuid.UUID
) -> tuple[Geofence, int]:
    """Delete the caller's tenant's geofence ``geofence_id`` (audited) and bump the fence
    set's version; return what it was and that version (for fences_changed after commit).

    Raises ProblemError(404) when the tenant has no such geofence.
    """
    tenant = principal_of(request).tenant_id
    before = await _fetch(conn, tenant, geofence_id)
    await conn.execute(
        "DELETE FROM geofences WHERE tenant_id = $1 AND id = $2", tenant, geofence_id
    )
    await record_change(request, conn, "delete", "geofence", geofence_id, before=before)
    return before, await _bump_version(conn, tenant)
