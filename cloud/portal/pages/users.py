"""Users and roles (``/portal/users``): the organisation's members, forms to add a member, change
each one's role and remove them; owners and admins only (decision D75)."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.accounts import (
    MemberCreate,
    MemberList,
    MemberQuery,
    drop_member,
    member_list,
    new_member,
    set_role,
)
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.auth.permissions import Permission, Role
from fleetlink.cloud.portal.form_errors import field_errors, sentence
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


async def add_member(request: web.Request) -> web.StreamResponse:
    """Make the form's e-mail (a new user, or an existing one) a member with the form's role
    and, if given, initial password; show the page with a notice, or the errors next to their
    fields (422; 409 for someone already a member, 403 for an owner made by a non-owner)."""
    form = await posted_fields(request)
    fields: dict[str, str | None] = {
        "email": form.get("email", "").strip(),
        "name": form.get("name", "").strip(),
        "role": form.get("role", ""),
        "password": form.get("password") or None,
    }
    kept = {k: v for k, v in fields.items() if k != "password"}
    try:
        body = MemberCreate.model_validate(fields)
    except ValidationError as exc:
        errors = {f"new_{k}": v for k, v in field_errors(exc).items()}
        if "new_email" in errors:
            errors["new_email"] = "Enter an e-mail address such as name@example.com."
        async with tenant_transaction(request) as conn:
            return await page_after_form(request, conn, page, 422, errors=errors, form=kept)
    try:
        member = await new_member(request, body)
    except ProblemError as refused:
        field = {403: "new_role", 409: "new_email"}.get(refused.status, "new_email")
        if any(e.get("field") == "password" for e in refused.errors or []):
            field = "new_password"
        status = refused.status if refused.status in (403, 409) else 422
        async with tenant_transaction(request) as conn:
            errors = {field: sentence(refused.detail)}
            return await page_after_form(request, conn, page, status, errors=errors, form=kept)
    notice = f"{member.email} is now a member ({member.role.value.replace('_', ' ')})."
    async with tenant_transaction(request) as conn:
        return await page_after_form(request, conn, page, notice=notice)


async def remove_member(request: web.Request) -> web.StreamResponse:
    """Remove the member of the path (their tokens and sessions here end); show the page with
    a notice, or the refusal next to that member's remove button (404 page for another
    tenant's member)."""
    try:
        user_id = path_uuid(request, "user_id")
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)
    async with tenant_transaction(request) as conn:
        try:
            gone = await drop_member(request, conn, user_id)
        except ProblemError as refused:
            if refused.status == 404:
                return render_error(request, 404, refused.detail, page.name)
            errors = {f"remove-{user_id}": sentence(refused.detail)}
            return await page_after_form(request, conn, page, 422, errors=errors)
        return await page_after_form(request, conn, page, notice=f"{gone.email} is removed.")


routes = web.RouteTableDef()
routes.post("/portal/users")(portal_guard(add_member, Permission.USERS_WRITE))
routes.post("/portal/users/{user_id}/role")(portal_guard(change_role, Permission.USERS_WRITE))
routes.post("/portal/users/{user_id}/remove")(portal_guard(remove_member, Permission.USERS_WRITE))
