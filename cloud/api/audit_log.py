"""``/api/v1/audit``: the tenant's audit log, newest first (admins and owners)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.request_parsing import query_model
from fleetlink.cloud.api.rest import PageQuery, SortKey, keyset, split_page
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission

api = ResourceRoutes("audit")
routes = api.routes

_NEWEST_FIRST = "-id"
_SORTS = {"id": SortKey("id", "a.id", "bigint")}


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    resource: str
    resource_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    remote: str | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = None


class AuditQuery(PageQuery):
    resource: str | None = Field(None, max_length=64)
    resource_id: str | None = Field(None, max_length=100)
    action: str | None = Field(None, max_length=64)


@api.get(
    "/api/v1/audit",
    summary="Who changed what and when, with the record before and after",
    response=AuditPage,
    permission=Permission.AUDIT_READ,
    query=AuditQuery,
    errors=(400,),
)
async def audit_log(request: web.Request) -> web.Response:
    query = query_model(request, AuditQuery)
    args: list[Any] = [principal_of(request).tenant_id]
    conditions = ["a.tenant_id = $1"]
    for column in ("resource", "resource_id", "action"):
        value = getattr(query, column)
        if value is not None:
            args.append(value)
            conditions.append(f"a.{column} = ${len(args)}")
    after, order = keyset(_SORTS, _NEWEST_FIRST, query.cursor, "a.id", args, "bigint")
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    sql = (
        "SELECT a.id, a.at, a.actor, a.action, a.resource, a.resource_id, a.before, a.after, "
        f"a.remote FROM audit_log a WHERE {' AND '.join(conditions)} {order} LIMIT ${len(args)}"
    )
    async with tenant_transaction(request) as conn:
        rows = await conn.fetch(sql, *args)
    shown, cursor = split_page(rows, query.limit, _SORTS, _NEWEST_FIRST)
    page = AuditPage(items=[AuditEntry.model_validate(dict(r)) for r in shown], next_cursor=cursor)
    return web.json_response(text=page.model_dump_json())
