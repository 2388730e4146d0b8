"""``/api/v1/inbox``: alerts that need a person: device events of severity warning or
critical, geofence crossings and cloud rules. Each item is acknowledged, assigned, commented,
coached and resolved through one actions route; every action is on the item's timeline and
in the audit log."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.day_range import DayRange
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import PageQuery, SortKey, json_body, keyset, split_page
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import LIVE_OUT
from fleetlink.cloud.auth.permissions import ROLE_PERMISSIONS, Permission, Role

api = ResourceRoutes("inbox")
routes = api.routes

ITEM_ID = {"description": "Inbox item UUID", "schema": {"type": "string", "format": "uuid"}}
_NEWEST_FIRST = "-ts"
_SORTS = {"ts": SortKey("ts", "i.ts", "timestamptz")}
State = Literal["open", "acknowledged", "resolved"]
Source = Literal["device", "geofence", "rule"]
Severity = Literal["info", "warning", "critical"]


class InboxNote(BaseModel):
    id: int
    action: str
    actor: str
    body: str
    created_at: datetime


class InboxItem(BaseModel):
    id: uuid.UUID
    source: Source
    type: str
    severity: Severity
    vehicle_id: uuid.UUID | None
    device_id: str | None
    event_id: uuid.UUID | None = Field(description="The device event this item stands for")
    ts: datetime = Field(description="When it happened")
    data: dict[str, Any]
    state: State
    assignee_id: uuid.UUID | None
    coached: bool
    created_at: datetime
    version: int


class InboxItemDetail(InboxItem):
    notes: list[InboxNote] = Field(description="The item's timeline, oldest first")


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None = None


class InboxQuery(PageQuery):
    state: State | None = None
    source: Source | None = None
    severity: Severity | None = None
    vehicle_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    type: str | None = Field(None, pattern=r"^[a-z][a-z0-9_.]{0,63}$")


class InboxAction(BaseModel):
    """One action on an item: ``acknowledge``, ``resolve`` and ``reopen`` change its state,
    ``assign`` sets (or with null clears) ``assignee_id``, ``comment`` and ``coach`` add a
    note (``coach`` also marks the driver as coached)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "resolve", "reopen", "assign", "comment", "coach"]
    body: str = Field("", max_length=4000)
    assignee_id: uuid.UUID | None = None


_COLUMNS = (
    "i.id, i.source, i.type, i.severity, i.vehicle_id, i.device_id, i.event_id, i.ts, i.data, "
    "i.state, i.assignee_id, i.coached, i.created_at, i.version"
)


@api.get(
    "/api/v1/inbox",
    summary="Alerts, newest first, filtered by state, source, severity, vehicle or assignee",
    response=InboxPage,
    permission=Permission.INBOX_READ,
    query=InboxQuery,
    errors=(400,),
)
async def list_inbox(request: web.Request) -> web.Response:
    query = query_model(request, InboxQuery)
    async with tenant_transaction(request) as conn:
        page = await inbox_page(conn, principal_of(request).tenant_id, query)
    return web.json_response(text=page.model_dump_json())


async def inbox_page(conn: asyncpg.Connection, tenant: str, query: InboxQuery) -> InboxPage:
    """Return the page of ``tenant``'s alerts, newest first, that ``query`` asks for; raise
    ProblemError(400) for a cursor that does not fit."""
    args: list[Any] = [tenant]
    conditions = ["i.tenant_id = $1"]
    for column in ("state", "source", "severity", "vehicle_id", "assignee_id", "type"):
        value = getattr(query, column)
        if value is not None:
            args.append(value)
            conditions.append(f"i.{column} = ${len(args)}")
    after, order = keyset(_SORTS, _NEWEST_FIRST, query.cursor, "i.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    sql = (
        f"SELECT {_COLUMNS} FROM inbox_items i WHERE {' AND '.join(conditions)} {order} "
        f"LIMIT ${len(args)}"
    )
    rows = await conn.fetch(sql, *args)
    shown, cursor = split_page(rows, query.limit, _SORTS, _NEWEST_FIRST)
    return InboxPage(items=[InboxItem.model_validate(dict(r)) for r in shown], next_cursor=cursor)


class DailyAlerts(BaseModel):
    day: date
    info: int
    warning: int
    critical: int


class DailyAlertCounts(BaseModel):
    from_: date = Field(alias="from")
    to: date
    days: list[DailyAlerts] = Field(description="Every day of the range, oldest first")
    model_config = ConfigDict(populate_by_name=True)


class DailyAlertQuery(DayRange):
    vehicle_id: uuid.UUID | None = None


async def daily_alert_counts(
    conn: asyncpg.Connection, tenant: str, query: DailyAlertQuery
) -> DailyAlertCounts:
    """Return how many alerts happened per UTC day of the range, by severity."""
    first, end = query.bounds()
    args: list[Any] = [tenant, first, end]
    vehicle = ""
    if query.vehicle_id is not None:
        args.append(query.vehicle_id)
        vehicle = "AND i.vehicle_id = $4"
    rows = await conn.fetch(
        f"""SELECT (i.ts AT TIME ZONE 'UTC')::date AS day, i.severity, count(*) AS n
            FROM inbox_items i
            WHERE i.tenant_id = $1 AND i.ts >= $2::date AND i.ts < $3::date {vehicle}
            GROUP BY 1, 2""",
        *args,
    )
    counts: dict[date, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["day"], {})[r["severity"]] = r["n"]
    first_day, last_day = query.days()
    days = []
    for n in range((last_day - first_day).days + 1):
        day = first_day + timedelta(days=n)
        of_day = counts.get(day, {})
        days.append(
            DailyAlerts(
                day=day,
                info=of_day.get("info", 0),
                warning=of_day.get("warning", 0),
                critical=of_day.get("critical", 0),
            )
        )
    return DailyAlertCounts(from_=first_day, to=last_day, days=days)


@api.get(
    "/api/v1/inbox/daily",
    summary="How many alerts happened per day of a range, by severity",
    response=DailyAlertCounts,
    permission=Permission.INBOX_READ,
    query=DailyAlertQuery,
    errors=(400,),
)
async def get_daily_alerts(request: web.Request) -> web.Response:
    query = query_model(request, DailyAlertQuery)
    async with tenant_transaction(request) as conn:
        counts = await daily_alert_counts(conn, principal_of(request).tenant_id, query)
    return web.json_response(text=counts.model_dump_json(by_alias=True))


async def inbox_item(conn: asyncpg.Connection, tenant: str, item_id: uuid.UUID) -> InboxItemDetail:
    """Return the alert with its timeline; raise ProblemError(404) if the tenant has none."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM inbox_items i WHERE i.tenant_id = $1 AND i.id = $2",
        tenant,
        item_id,
    )
    if row is None:
        raise ProblemError(404, f"no inbox item {item_id}")
    notes = await conn.fetch(
        "SELECT id, action, actor, body, created_at FROM inbox_notes "
        "WHERE tenant_id = $1 AND item_id = $2 ORDER BY id",
        tenant,
        item_id,
    )
    return InboxItemDetail(**dict(row), notes=[InboxNote.model_validate(dict(n)) for n in notes])


@api.get(
    "/api/v1/inbox/{item_id}",
    summary="One alert with its timeline",
    response=InboxItemDetail,
    permission=Permission.INBOX_READ,
    path_params={"item_id": ITEM_ID},
    errors=(400, 404),
)
async def get_item(request: web.Request) -> web.Response:
    item_id = path_uuid(request, "item_id")
    async with tenant_transaction(request) as conn:
        item = await inbox_item(conn, principal_of(request).tenant_id, item_id)
    return web.json_response(text=item.model_dump_json(), headers={"ETag": f'"{item.version}"'})


_NEXT_STATE = {
    "acknowledge": ({"open"}, "acknowledged"),
    "resolve": ({"open", "acknowledged"}, "resolved"),
    "reopen": ({"acknowledged", "resolved"}, "open"),
}


def takes_alerts(role: str) -> bool:
    """Return whether a member of ``role`` may be assigned an alert: one who sees the inbox and
    can act on the alert itself or on the vehicle (a technician), not a viewer."""
    granted = ROLE_PERMISSIONS[Role(role)]
    return Permission.INBOX_READ in granted and bool(
        granted & {Permission.INBOX_WRITE, Permission.MAINTENANCE_WRITE}
    )


async def _require_assignable(conn: asyncpg.Connection, tenant: str, user_id: uuid.UUID) -> None:
    """Raise ProblemError(422) unless ``user_id`` is a member of ``tenant`` who takes alerts
    (``takes_alerts``; the portal offers only those)."""
    role = await conn.fetchval(
        "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2", tenant, user_id
    )
    if role is None:
        raise ProblemError(
            422,
            f"no member {user_id}",
            errors=[{"field": "assignee_id", "message": "not a member of this tenant"}],
        )
    if not takes_alerts(role):
        raise ProblemError(
            422,
            f"a {role} cannot be assigned alerts",
            errors=[{"field": "assignee_id", "message": f"a {role} cannot be assigned alerts"}],
        )


@api.post(
    "/api/v1/inbox/{item_id}/actions",
    summary="Acknowledge, resolve, reopen, assign, comment on or coach an alert",
    response=InboxItemDetail,
    permission=Permission.INBOX_WRITE,
    body=InboxAction,
    path_params={"item_id": ITEM_ID},
    errors=(400, 404, 409, 415, 422),
)
async def act_on_item(request: web.Request) -> web.Response:
    item_id = path_uuid(request, "item_id")
    action: InboxAction = await json_body(request, InboxAction)
    after = await act(request, item_id, action)
    return web.json_response(text=after.model_dump_json(), headers={"ETag": f'"{after.version}"'})


async def act(request: web.Request, item_id: uuid.UUID, action: InboxAction) -> InboxItemDetail:
    """Apply the caller's ``action`` to the alert, note it on its timeline and in the audit
    log, and tell the live stream; return the alert after it.

    Raises ProblemError: 404 for another tenant's or no alert, 409 for a state change the
    alert's state does not allow, 422 for an assignee who is not a member or an empty note.
    """
    principal = principal_of(request)
    tenant = principal.tenant_id
    async with tenant_transaction(request) as conn:
        before = await inbox_item(conn, tenant, item_id)
        changes: dict[str, Any] = {}
        if action.action in _NEXT_STATE:
            allowed_from, target = _NEXT_STATE[action.action]
            if before.state not in allowed_from:
                raise ProblemError(409, f"the item is {before.state}; cannot {action.action}")
            changes["state"] = target
        elif action.action == "assign":
            if action.assignee_id is not None:
                await _require_assignable(conn, tenant, action.assignee_id)
            changes["assignee_id"] = action.assignee_id
        else:
            if not action.body.strip():
                raise ProblemError(
                    422,
                    f"a {action.action} needs a body",
                    errors=[{"field": "body", "message": "empty"}],
                )
            if action.action == "coach":
                changes["coached"] = True
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            await conn.execute(
                f"UPDATE inbox_items SET {sets}, version = version + 1 "
                "WHERE tenant_id = $1 AND id = $2",
                tenant,
                item_id,
                *changes.values(),
            )
        note = action.body
        if action.action == "assign":
            note = f"assigned to {action.assignee_id}" if action.assignee_id else "unassigned"
        await conn.execute(
            "INSERT INTO inbox_notes (tenant_id, item_id, action, actor, body) "
            "VALUES ($1, $2, $3, $4, $5)",
            tenant,
            item_id,
            action.action,
            principal.actor,
            note,
        )
        after = await inbox_item(conn, tenant, item_id)
        await record_change(
            request,
            conn,
            action.action,
            "inbox_item",
            item_id,
            before=before.model_dump(mode="json", exclude={"notes"}),
            after=after.model_dump(mode="json", exclude={"notes"}),
        )
    request.app[LIVE_OUT].publish(
        tenant,
        "inbox",
        {"id": str(item_id), "action": action.action, "state": after.state},
        str(after.vehicle_id) if after.vehicle_id else None,
    )
    return after
