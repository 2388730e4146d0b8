"""``/api/v1/searches``: each user's saved searches of vehicles and drivers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.rest import json_body, sort_pattern
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import SORTS as VEHICLE_SORTS
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.records.vehicle_profile import VehicleStatus

api = ResourceRoutes("searches")
routes = api.routes

SEARCH_ID = {"description": "Saved search UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_SEARCHES = 200


class VehicleSearch(BaseModel):
    """The filters and sort of a vehicle list, as saved (no page position)."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(None, max_length=200)
    status: VehicleStatus | None = None
    make: str | None = Field(None, max_length=100)
    fleet_id: uuid.UUID | None = None
    tag: str | None = Field(None, max_length=64)
    sort: str = Field("name", pattern=sort_pattern(VEHICLE_SORTS))


class SavedSearchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    resource: Literal["vehicles"] = "vehicles"
    query: VehicleSearch = Field(description="Parameters of the resource's list")


class SavedSearch(BaseModel):
    id: uuid.UUID
    name: str
    resource: str
    query: dict[str, Any]
    url: str = Field(description="The list URL that runs it")
    created_at: datetime


class SavedSearchList(BaseModel):
    items: list[SavedSearch]


class Deleted(BaseModel):
    deleted: bool


def _search(row: asyncpg.Record) -> SavedSearch:
    data = dict(row)
    data["url"] = f"/api/v1/{data['resource']}?{urlencode(data['query'])}"
    return SavedSearch.model_validate(data)


@api.get(
    "/api/v1/searches",
    summary="Your saved searches",
    response=SavedSearchList,
    permission=Permission.SEARCHES_OWN,
)
async def list_searches(request: web.Request) -> web.Response:
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        body = await saved_searches(conn, principal.tenant_id, principal.user_id)
    return web.json_response(text=body.model_dump_json())


async def saved_searches(
    conn: asyncpg.Connection, tenant: str, user_id: uuid.UUID
) -> SavedSearchList:
    """Return the user's saved searches in ``tenant``, by name."""
    rows = await conn.fetch(
        "SELECT id, name, resource, query, created_at FROM saved_searches "
        "WHERE tenant_id = $1 AND user_id = $2 ORDER BY name",
        tenant,
        user_id,
    )
    return SavedSearchList(items=[_search(r) for r in rows])


@api.post(
    "/api/v1/searches",
    summary="Save a search",
    response=SavedSearch,
    permission=Permission.SEARCHES_OWN,
    body=SavedSearchCreate,
    status=201,
    errors=(400, 409, 415, 422),
)
async def save_search(request: web.Request) -> web.Response:
    body: SavedSearchCreate = await json_body(request, SavedSearchCreate)
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        saved = await store_search(conn, principal.tenant_id, principal.user_id, body)
    return web.json_response(text=saved.model_dump_json(), status=201)


async def store_search(
    conn: asyncpg.Connection, tenant: str, user_id: uuid.UUID, body: SavedSearchCreate
) -> SavedSearch:
    """Save the user's search and return it; raise ProblemError(409) for a name the user
    has already, or when they hold MAX_SEARCHES."""
    count = await conn.fetchval(
        "SELECT count(*) FROM saved_searches WHERE tenant_id = $1 AND user_id = $2",
        tenant,
        user_id,
    )
    if count >= MAX_SEARCHES:
        raise ProblemError(409, f"at most {MAX_SEARCHES} saved searches; delete some first")
    try:
        row = await conn.fetchrow(
            "INSERT INTO saved_searches (id, tenant_id, user_id, name, resource, query) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, resource, query, created_at",
            uuid.uuid4(),
            tenant,
            user_id,
            body.name,
            body.resource,
            body.query.model_dump(mode="json", exclude_none=True),
        )
    except asyncpg.UniqueViolationError:
        raise ProblemError(
            409,
            f"you have a saved search named {body.name!r}",
            errors=[{"field": "name", "message": "taken"}],
        ) from None
    return _search(row)


@api.delete(
    "/api/v1/searches/{search_id}",
    summary="Delete one of your saved searches",
    response=Deleted,
    permission=Permission.SEARCHES_OWN,
    path_params={"search_id": SEARCH_ID},
    errors=(400, 404),
)
async def delete_search(request: web.Request) -> web.Response:
    search_id = path_uuid(request, "search_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        status = await conn.execute(
            "DELETE FROM saved_searches WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
            principal.tenant_id,
            principal.user_id,
            search_id,
        )
    if status != "DELETE 1":
        raise ProblemError(404, f"no saved search {search_id}")
    return web.json_response(text=Deleted(deleted=True).model_dump_json())
