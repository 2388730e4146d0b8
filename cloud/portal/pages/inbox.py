"""The alerts inbox (``/portal/inbox``): alerts newest first, filtered by state and severity;
roles that may act acknowledge, resolve, assign (to any member whose role may act) and coach
from here (POST forms, each the API's own action through ``inbox.act``)."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError
from yarl import URL

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.accounts import Member, MemberQuery, member_list
from fleetlink.cloud.api.inbox import (
    InboxAction,
    InboxPage,
    InboxQuery,
    act,
    inbox_page,
    takes_alerts,
)
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.rest import MAX_PAGE
from fleetlink.cloud.api.vehicles import fetch_vehicle
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_page import page_after_form
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error

PATH = "/portal/inbox"
DONE = {
    "acknowledge": "Alert acknowledged.",
    "resolve": "Alert resolved.",
    "reopen": "Alert reopened.",
    "assign": "Assignment changed.",
    "comment": "Comment added.",
    "coach": "Coaching note added.",
}


class InboxView(BaseModel):
    query: InboxQuery
    alerts: InboxPage
    vehicle_names: dict[str, str]
    may_act: bool
    assignees: list[Member]
    done: str | None


async def load(request: web.Request, conn: asyncpg.Connection) -> InboxView:
    """Return the page of alerts the query string asks for, with their vehicles' names."""
    principal = principal_of(request)
    query = form_query(request, InboxQuery, drop=("done",))
    alerts = await inbox_page(conn, principal.tenant_id, query)
    names: dict[str, str] = {}
    if principal.can(Permission.VEHICLES_READ):
        for vehicle_id in {i.vehicle_id for i in alerts.items if i.vehicle_id is not None}:
            vehicle = await fetch_vehicle(conn, principal.tenant_id, vehicle_id)
            names[str(vehicle_id)] = vehicle.name
    may_act = principal.can(Permission.INBOX_WRITE, safe=False)
    return InboxView(
        query=query,
        alerts=alerts,
        vehicle_names=names,
        may_act=may_act,
        assignees=await assignees(conn, principal.tenant_id) if may_act else [],
        done=DONE.get(request.query.get("done", "")),
    )


async def assignees(conn: asyncpg.Connection, tenant: str) -> list[Member]:
    """Return the tenant's members who may be assigned alerts (``takes_alerts``), by e-mail
    (the first MAX_PAGE of them)."""
    members = await member_list(conn, tenant, MemberQuery(limit=MAX_PAGE))
    return [m for m in members.items if takes_alerts(m.role)]


page = Page(
    name="inbox",
    path=PATH,
    title="Alerts inbox",
    permission=Permission.INBOX_READ,
    load=load,
    nav="Alerts",
)

routes = web.RouteTableDef()


async def _act(request: web.Request) -> web.StreamResponse:
    """Apply one action from an alert's form, then show the inbox again (303)."""
    form = await request.post()
    try:
        item_id = uuid.UUID(request.match_info["item_id"])
    except ValueError:
        return render_error(request, 404, "No such alert.", "inbox")
    fields = {k: v for k, v in form.items() if k in ("action", "body") and isinstance(v, str)}
    assignee = form.get("assignee_id")
    if fields.get("action") == "assign":
        fields_any: dict[str, object] = {**fields, "assignee_id": assignee or None}
    else:
        fields_any = dict(fields)
    try:
        action = InboxAction.model_validate(fields_any)
    except ValidationError:
        return render_error(request, 422, "That action is not one the inbox knows.", "inbox")
    try:
        await act(request, item_id, action)
    except ProblemError as problem:
        if problem.status == 422 and action.action == "assign":
            errors = {f"assignee-{item_id}": "Choose one of the members listed."}
            async with tenant_transaction(request) as conn:
                return await page_after_form(request, conn, page, 422, errors=errors)
        return render_error(request, problem.status, problem.detail, "inbox")
    back = form.get("back")
    target = URL(back if isinstance(back, str) and back.startswith(PATH) else PATH)
    raise web.HTTPSeeOther(str(target.update_query(done=action.action)))


routes.post(PATH + "/{item_id}/actions")(portal_guard(_act, Permission.INBOX_WRITE))
