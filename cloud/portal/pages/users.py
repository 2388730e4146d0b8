"""Users and roles (``/portal/users``): the organisation's members; owners and admins only."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.accounts import MemberList, MemberQuery, member_list
from fleetlink.cloud.auth.permissions import Permission, Role
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.page import Page


class UsersPage(BaseModel):
    query: MemberQuery
    members: MemberList
    roles: list[Role]


async def load(request: web.Request, conn: asyncpg.Connection) -> UsersPage:
    """Return the page of members the query string asks for."""
    query = form_query(request, MemberQuery)
    members = await member_list(conn, principal_of(request).tenant_id, query)
    return UsersPage(query=query, members=members, roles=list(Role))


page = Page(
    name="users",
    path="/portal/users",
    title="Users and roles",
    # Reading members is allowed to fleet managers by the API; the page is the admins' tool.
    permission=Permission.USERS_WRITE,
    load=load,
    nav="Users",
)
