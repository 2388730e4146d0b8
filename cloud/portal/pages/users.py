"""Users and roles (``/portal/users``): the organisation's members and a form to change each
one's role; owners and admins only (decision D75)."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.accounts import MemberList, MemberQuery, member_list, set_role
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.auth.permissions import Permission, Role
from fleetlink.cloud.portal.form_page import page_after_form, posted_fields
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error


class UsersPage(BaseModel):
    query: MemberQuery
    members: MemberList
    roles: list[Role]


async def load(request: web.Request, conn: asyncpg.Connection) -> UsersPage:
    """Return the page of members the query string asks for, and the roles one may give."""
    query = form_query(request, MemberQuery)
    members = await member_list(conn, principal_of(request).tenant_id, query)
    return UsersPage(query=query, members=members, roles=list(Role))


page = Page(
    name="users",
    path="/portal/users",
    title="Users and roles",
    # The API lets fleet managers read the members; this page is the admins' tool.
    permission=Permission.USERS_WRITE,
    load=load,
    nav="Users",
)


async def change_role(request: web.Request) -> web.StreamResponse:
    """Give the member of the path the form's role; show the page with a notice, or the
    refusal next to that member's role field (404 page for another tenant's member)."""
    form = await posted_fields(request)
    try:
        user_id = path_uuid(request, "user_id")
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)
    field = f"role-{user_id}"
    async with tenant_transaction(request) as conn:
        try:
            role = Role(form.get("role", ""))
        except ValueError:
            errors = {field: "Choose one of the roles listed."}
            return await page_after_form(request, conn, page, 422, errors=errors)
        try:
            member = await set_role(request, conn, user_id, role)
        except ProblemError as refused:
            if refused.status == 404:
                return render_error(request, 404, refused.detail, page.name)
            errors = {field: refused.detail[:1].upper() + refused.detail[1:] + "."}
            return await page_after_form(request, conn, page, 422, errors=errors)
        notice = f"{member.email} is now {role.value.replace('_', ' ')}."
        return await page_after_form(request, conn, page, notice=notice)


routes = web.RouteTableDef()
routes.post("/portal/users/{user_id}/role")(portal_guard(change_role, Permission.USERS_WRITE))
