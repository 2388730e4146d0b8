"""``/api/v1/fleets``: the tenant's fleets, a hierarchy of groups of vehicles and drivers."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.rest import json_body, json_response, require_if_match
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission

api = ResourceRoutes("fleets")
routes = api.routes

FLEET_ID = {"description": "Fleet UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_FLEETS = 10_000


class Fleet(BaseModel):
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    path: list[str] = Field(description="Names from the top fleet down to this one")
    vehicles: int = Field(description="Vehicles directly in this fleet")
    drivers: int = Field(description="Drivers directly in this fleet")
    created_at: datetime
    version: int


class FleetList(BaseModel):
    items: list[Fleet] = Field(description="Every fleet, parents before their children")


class FleetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    parent_id: uuid.UUID | None = None


class FleetPatch(BaseModel):
    """Rename or move a fleet (send If-Match with its ETag)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    parent_id: uuid.UUID | None = None


class Deleted(BaseModel):
    deleted: bool


_TREE = """
    WITH RECURSIVE tree AS (
        SELECT f.id, f.name, f.parent_id, ARRAY[f.name] AS path, f.created_at, f.version
        FROM fleets f WHERE f.tenant_id = $1 AND f.parent_id IS NULL
        UNION ALL
        SELECT f.id, f.name, f.parent_id, tree.path || f.name, f.created_at, f.version
        FROM fleets f JOIN tree ON f.parent_id = tree.id WHERE f.tenant_id = $1
    )
    SELECT tree.*,
           (SELECT count(*) FROM vehicles v WHERE v.tenant_id = $1 AND v.fleet_id = tree.id)
               AS vehicles,
           (SELECT count(*) FROM drivers d WHERE d.tenant_id = $1 AND d.fleet_id = tree.id)
               AS drivers
    FROM tree
"""


async def _fetch(conn: asyncpg.Connection, tenant: str, fleet_id: uuid.UUID) -> Fleet:
    row = await conn.fetchrow(_TREE + " WHERE tree.id = $2", tenant, fleet_id)
    if row is None:
        raise ProblemError(404, f"no fleet {fleet_id}")
    return Fleet.model_validate(dict(row))


async def require_fleet(conn: asyncpg.Connection, tenant: str, fleet_id: uuid.UUID | None) -> None:
    """Raise ProblemError(422) naming ``fleet_id`` unless it is None or one of the tenant's."""
    if fleet_id is not None and not await conn.fetchval(
        "SELECT 1 FROM fleets WHERE tenant_id = $1 AND id = $2", tenant, fleet_id
    ):
        raise ProblemError(
            422, f"no fleet {fleet_id}", errors=[{"field": "fleet_id", "message": "unknown fleet"}]
        )


async def _check_parent(
    conn: asyncpg.Connection, tenant: str, parent_id: uuid.UUID | None, moving: uuid.UUID | None
) -> None:
    """Raise 422 for an unknown parent, or one inside the fleet being moved (a cycle)."""
    if parent_id is None:
        return
    ancestors = await conn.fetchval(
        """WITH RECURSIVE up AS (
               SELECT id, parent_id FROM fleets WHERE tenant_id = $1 AND id = $2
               UNION ALL
               SELECT f.id, f.parent_id FROM fleets f JOIN up ON f.id = up.parent_id
               WHERE f.tenant_id = $1
           ) SELECT array_agg(id) FROM up""",
        tenant,
        parent_id,
    )
    if not ancestors:
        raise ProblemError(
            422, f"no fleet {parent_id}", errors=[{"field": "parent_id", "message": "unknown"}]
        )
    if moving is not None and moving in ancestors:
        raise ProblemError(
            422,
            "a fleet cannot move under itself or its own sub-fleet",
            errors=[{"field": "parent_id", "message": "would make a cycle"}],
        )


def _name_taken() -> ProblemError:
    return ProblemError(
        409,
        "a fleet of that name exists under the same parent",
        errors=[{"field": "name", "message": "taken"}],
    )


@api.get(
    "/api/v1/fleets",
    summary="Every fleet of the tenant",
    response=FleetList,
    permission=Permission.FLEETS_READ,
)
async def list_fleets(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        fleets = await fleet_list(conn, principal_of(request).tenant_id)
    return json_response(fleets)


async def fleet_list(conn: asyncpg.Connection, tenant: str) -> FleetList:
    """Return ``tenant``'s fleets (up to MAX_FLEETS), parents before their children."""
    rows = await conn.fetch(_TREE + " ORDER BY tree.path LIMIT $2", tenant, MAX_FLEETS)
    return FleetList(items=[Fleet.model_validate(dict(r)) for r in rows])


@api.get(
    "/api/v1/fleets/{fleet_id}",
    summary="One fleet",
    response=Fleet,
    permission=Permission.FLEETS_READ,
    path_params={"fleet_id": FLEET_ID},
    errors=(400, 404),
)
async def get_fleet(request: web.Request) -> web.Response:
    fleet_id = path_uuid(request, "fleet_id")
    async with tenant_transaction(request) as conn:
        fleet = await _fetch(conn, principal_of(request).tenant_id, fleet_id)
    return json_response(fleet, version=fleet.version)


@api.post(
    "/api/v1/fleets",
    summary="Add a fleet, at the top or under another",
    response=Fleet,
    permission=Permission.FLEETS_WRITE,
    body=FleetCreate,
    status=201,
    errors=(400, 409, 415, 422),
)
async def create_fleet(request: web.Request) -> web.Response:
    body: FleetCreate = await json_body(request, FleetCreate)
    principal = principal_of(request)
    fleet_id = uuid.uuid4()
    async with tenant_transaction(request) as conn:
        await _check_parent(conn, principal.tenant_id, body.parent_id, None)
        try:
            await conn.execute(
                "INSERT INTO fleets (id, tenant_id, parent_id, name) VALUES ($1, $2, $3, $4)",
                fleet_id,
                principal.tenant_id,
                body.parent_id,
                body.name,
            )
        except asyncpg.UniqueViolationError:
            raise _name_taken() from None
        fleet = await _fetch(conn, principal.tenant_id, fleet_id)
        await record_change(
            request,
            conn,
            "create",
            "fleet",
            fleet_id,
            after=fleet,
        )
    return json_response(fleet, status=201, version=fleet.version)


@api.patch(
    "/api/v1/fleets/{fleet_id}",
    if_match=True,
    summary="Rename or move a fleet",
    response=Fleet,
    permission=Permission.FLEETS_WRITE,
    body=FleetPatch,
    path_params={"fleet_id": FLEET_ID},
    errors=(400, 404, 409, 412, 415, 422, 428),
)
async def patch_fleet(request: web.Request) -> web.Response:
    fleet_id = path_uuid(request, "fleet_id")
    body: FleetPatch = await json_body(request, FleetPatch)
    principal = principal_of(request)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if "name" in changes and changes["name"] is None:
        raise ProblemError(
            422,
            "a fleet's name cannot be cleared",
            errors=[{"field": "name", "message": "cannot be null"}],
        )
    async with tenant_transaction(request) as conn:
        before = await _fetch(conn, principal.tenant_id, fleet_id)
        require_if_match(request, before.version)
        if "parent_id" in changes:
            await _check_parent(conn, principal.tenant_id, changes["parent_id"], fleet_id)
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            try:
                await conn.execute(
                    f"UPDATE fleets SET {sets}, version = version + 1 "
                    "WHERE tenant_id = $1 AND id = $2",
                    principal.tenant_id,
                    fleet_id,
                    *changes.values(),
                )
            except asyncpg.UniqueViolationError:
                raise _name_taken() from None
        after = await _fetch(conn, principal.tenant_id, fleet_id)
        if changes:
            await record_change(
                request,
                conn,
                "update",
                "fleet",
                fleet_id,
                before=before,
                after=after,
            )
    return json_response(after, version=after.version)


@api.delete(
    "/api/v1/fleets/{fleet_id}",
    summary="Delete an empty fleet",
    response=Deleted,
    permission=Permission.FLEETS_WRITE,
    path_params={"fleet_id": FLEET_ID},
    errors=(400, 404, 409),
)
async def delete_fleet(request: web.Request) -> web.Response:
    fleet_id = path_uuid(request, "fleet_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        before = await _fetch(conn, principal.tenant_id, fleet_id)
        children = await conn.fetchval(
            "SELECT count(*) FROM fleets WHERE tenant_id = $1 AND parent_id = $2",
            principal.tenant_id,
            fleet_id,
        )
        if children or before.vehicles or before.drivers:
            raise ProblemError(
                409, "the fleet still holds sub-fleets, vehicles or drivers; move them first"
            )
        await conn.execute(
            "DELETE FROM fleets WHERE tenant_id = $1 AND id = $2", principal.tenant_id, fleet_id
        )
        await record_change(
            request,
            conn,
            "delete",
            "fleet",
            fleet_id,
            before=before,
        )
    return json_response(Deleted(deleted=True))
