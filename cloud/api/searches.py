"""``/api/v1/searches``: each user's saved searches of vehicles and drivers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.paging import json_body
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import VehicleQuery
from fleetlink.cloud.auth.permissions import Permission

api = ResourceRoutes("searches")
routes = api.routes

SEARCH_ID = {"description": "Saved search UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_SEARCHES = 200
_QUERIES: dict[str, type[BaseModel]] = {"vehicles": VehicleQuery}


class SavedSearchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    resource: Literal["vehicles"] = "vehicles"
    query: dict[str, str] = Field(
        description="Query parameters of the resource's list, e.g. {'q': 'van', 'status': 'active'}"
    )

    @model_validator(mode="after")
    def _query_fits_the_resource(self) -> SavedSearchCreate:
        if {"cursor", "limit"} & set(self.query):
            raise ValueError("a saved search keeps filters and sort, not cursor or limit")
        try:
            _QUERIES[self.resource].model_validate(self.query)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"query: {problems}") from None
        return self


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
    from urllib.parse import urlencode

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
        rows = await conn.fetch(
            "SELECT id, name, resource, query, created_at FROM saved_searches "
            "WHERE tenant_id = $1 AND user_id = $2 ORDER BY name",
            principal.tenant_id,
            principal.user_id,
        )
    body = SavedSearchList(items=[_search(r) for r in rows])
    return web.json_response(text=body.model_dump_json())


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
        count = await conn.fetchval(
            "SELECT count(*) FROM saved_searches WHERE tenant_id = $1 AND user_id = $2",
            principal.tenant_id,
            principal.user_id,
        )
        if count >= MAX_SEARCHES:
            raise ProblemError(409, f"at most {MAX_SEARCHES} saved searches; delete some first")
        try:
            row = await conn.fetchrow(
                "INSERT INTO saved_searches (id, tenant_id, user_id, name, resource, query) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, resource, query, created_at",
                uuid.uuid4(),
                principal.tenant_id,
                principal.user_id,
                body.name,
                body.resource,
                body.query,
            )
        except asyncpg.UniqueViolationError:
            raise ProblemError(
                409,
                f"you have a saved search named {body.name!r}",
                errors=[{"field": "name", "message": "taken"}],
            ) from None
    return web.json_response(text=_search(row).model_dump_json(), status=201)


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
