"""``/api/v1/users`` and ``/api/v1/tokens``: the tenant's members and their API tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import (
    PageQuery,
    SortKey,
    json_body,
    json_response,
    keyset,
    sort_pattern,
    split_page,
)
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import POOL, PRINCIPALS
from fleetlink.cloud.auth.accounts import AccountError, add_user
from fleetlink.cloud.auth.api_tokens import SCOPES, create_token, list_tokens, revoke_token
from fleetlink.cloud.auth.passwords import WeakPasswordError
from fleetlink.cloud.auth.permissions import Permission, Role

api = ResourceRoutes("accounts")
routes = api.routes

USER_ID = {"description": "User UUID", "schema": {"type": "string", "format": "uuid"}}
TOKEN_ID = {"description": "API token UUID", "schema": {"type": "string", "format": "uuid"}}


class Member(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    since: datetime


class MemberList(BaseModel):
    items: list[Member]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


MEMBER_SORTS = {
    "email": SortKey("email", "u.email", "text"),
    "since": SortKey("since", "m.created_at", "timestamptz"),
}


class MemberQuery(PageQuery):
    role: Role | None = None
    q: str | None = Field(None, max_length=254, description="Start of the e-mail or name")
    sort: str = Field("email", pattern=sort_pattern(MEMBER_SORTS))


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    role: Role
    name: str = Field("", max_length=200)
    password: str | None = Field(None, min_length=1, max_length=1024)


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class Removed(BaseModel):
    removed: bool


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    scopes: list[Literal["read", "write"]] = Field(
        default=["read", "write"], min_length=1, max_length=2
    )
    expires_at: AwareDatetime | None = None


class Token(BaseModel):
    id: uuid.UUID
    name: str
    email: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenList(BaseModel):
    items: list[Token]


class CreatedToken(Token):
    token: str = Field(description="Shown this once: send it as 'Authorization: Bearer …'")


class TokenQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: bool = Field(False, description="Every member's tokens (needs tokens:all)")


_MEMBERS = (
    "SELECT u.id, u.id AS user_id, u.email, u.name, m.role, m.created_at AS since "
    "FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1"
)


@api.get(
    "/api/v1/users",
    summary="The tenant's members and their roles",
    response=MemberList,
    permission=Permission.USERS_READ,
    query=MemberQuery,
    errors=(400,),
)
async def list_members(request: web.Request) -> web.Response:
    query = query_model(request, MemberQuery)
    async with tenant_transaction(request) as conn:
        members = await member_list(conn, principal_of(request).tenant_id, query)
    return json_response(members)


async def member_list(conn: asyncpg.Connection, tenant: str, query: MemberQuery) -> MemberList:
    """Return the page of ``tenant``'s members that ``query`` asks for.

    Raises ProblemError(400) for a cursor that does not fit the sort.
    """
    args: list[Any] = [tenant]
    conditions = []
    if query.role is not None:
        args.append(query.role.value)
        conditions.append(f"m.role = ${len(args)}")
    if query.q:
        args.append(query.q.lower().replace("%", r"\%").replace("_", r"\_") + "%")
        conditions.append(f"(u.email LIKE ${len(args)} OR lower(u.name) LIKE ${len(args)})")
    after, order = keyset(MEMBER_SORTS, query.sort, query.cursor, "u.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    where = "".join(f" AND {c}" for c in conditions)
    rows = await conn.fetch(f"{_MEMBERS}{where} {order} LIMIT ${len(args)}", *args)
    shown, cursor = split_page(rows, query.limit, MEMBER_SORTS, query.sort)
    items = [Member.model_validate(dict(r)) for r in shown]
    return MemberList(items=items, next_cursor=cursor)


@api.post(
    "/api/v1/users",
    summary="Add a member (a new user, or an existing one by e-mail)",
    response=Member,
    permission=Permission.USERS_WRITE,
    body=MemberCreate,
    status=201,
    errors=(400, 403, 409, 415, 422),
)
async def add_member(request: web.Request) -> web.Response:
    body: MemberCreate = await json_body(request, MemberCreate)
    return json_response(await new_member(request, body), status=201)


async def new_member(request: web.Request, body: MemberCreate) -> Member:
    """Make ``body``'s user (created, or found by e-mail) a member of the caller's tenant
    (audited, in its own transaction); return the member.

    Raises ProblemError 403 (making an owner without being one), 409 (already a member) or
    422 (a weak password, with ``errors`` naming ``password``; an unfit e-mail or role).
    """
    principal = principal_of(request)
    if body.role is Role.OWNER and principal.role is not Role.OWNER:
        raise ProblemError(403, "only an owner may make another owner")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            user_id = await add_user(
                conn, principal.tenant_id, body.email, body.role, body.password, body.name
            )
        except WeakPasswordError as exc:
            raise ProblemError(
                422, str(exc), errors=[{"field": "password", "message": str(exc)}]
            ) from None
        except AccountError as exc:
            status = 409 if "already a member" in str(exc) else 422
            raise ProblemError(status, str(exc)) from None
        row = await conn.fetchrow(_MEMBERS + " AND u.id = $2", principal.tenant_id, user_id)
        member = Member.model_validate(dict(row))
        await record_change(request, conn, "add_member", "user", user_id, after=member)
    return member


async def _locked_member(conn: asyncpg.Connection, tenant: str, user_id: uuid.UUID) -> Member:
    """Return the member, locked for this transaction; raise ProblemError(404) if none."""
    row = await conn.fetchrow(_MEMBERS + " AND u.id = $2 FOR UPDATE OF m", tenant, user_id)
    if row is None:
        raise ProblemError(404, f"no member {user_id}")
    return Member.model_validate(dict(row))


async def _owners(conn: asyncpg.Connection, tenant: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'", tenant
        )
    )


@api.patch(
    "/api/v1/users/{user_id}",
    summary="Change a member's role",
    response=Member,
    permission=Permission.USERS_WRITE,
    body=MemberPatch,
    path_params={"user_id": USER_ID},
    errors=(400, 403, 404, 409, 415, 422),
)
async def change_role(request: web.Request) -> web.Response:
    user_id = path_uuid(request, "user_id")
    body: MemberPatch = await json_body(request, MemberPatch)
    async with tenant_transaction(request) as conn:
        after = await set_role(request, conn, user_id, body.role)
    return json_response(after)


async def set_role(
    request: web.Request, conn: asyncpg.Connection, user_id: uuid.UUID, role: Role
) -> Member:
    """Give the caller's tenant's member ``user_id`` the ``role`` (audited); return them.

    Raises ProblemError 404 (no such member), 409 (one's own role, or the last owner's) or 403
    (making or unmaking an owner without being one).
    """
    principal = principal_of(request)
    before = await _locked_member(conn, principal.tenant_id, user_id)
    if user_id == principal.user_id:
        raise ProblemError(409, "another member with users:write changes your role")
    if Role.OWNER in (before.role, role) and principal.role is not Role.OWNER:
        raise ProblemError(403, "only an owner may make or unmake an owner")
    if (
        before.role is Role.OWNER
        and role is not Role.OWNER
        and await _owners(conn, principal.tenant_id) == 1
    ):
        raise ProblemError(409, "the tenant's last owner keeps the owner role")
    request.app[PRINCIPALS].forget_user(user_id)
    await conn.execute(
        "UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2",
        principal.tenant_id,
        user_id,
        role.value,
    )
    after = before.model_copy(update={"role": role})
    await record_change(request, conn, "change_role", "user", user_id, before=before, after=after)
    return after


@api.delete(
    "/api/v1/users/{user_id}",
    summary="Remove a member from the tenant (their sessions and tokens here end)",
    response=Removed,
    permission=Permission.USERS_WRITE,
    path_params={"user_id": USER_ID},
    errors=(400, 403, 404, 409),
)
async def remove_member(request: web.Request) -> web.Response:
    user_id = path_uuid(request, "user_id")
    async with tenant_transaction(request) as conn:
        await drop_member(request, conn, user_id)
    return json_response(Removed(removed=True))


async def drop_member(request: web.Request, conn: asyncpg.Connection, user_id: uuid.UUID) -> Member:
    """Remove the member ``user_id`` from the caller's tenant, revoking their tokens and ending
    their sessions there (audited); return who they were.

    Raises ProblemError 404 (no such member), 409 (oneself, or the last owner) or 403
    (removing an owner without being one).
    """
    principal = principal_of(request)
    before = await _locked_member(conn, principal.tenant_id, user_id)
    if user_id == principal.user_id:
        raise ProblemError(409, "another member with users:write removes you")
    if before.role is Role.OWNER:
        if principal.role is not Role.OWNER:
            raise ProblemError(403, "only an owner may remove an owner")
        if await _owners(conn, principal.tenant_id) == 1:
            raise ProblemError(409, "the tenant's last owner cannot be removed")
    request.app[PRINCIPALS].forget_user(user_id)
    await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() "
        "WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        principal.tenant_id,
        user_id,
    )
    await conn.execute(
        "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
        principal.tenant_id,
        user_id,
    )
    await conn.execute(
        "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2",
        principal.tenant_id,
        user_id,
    )
    await record_change(request, conn, "remove_member", "user", user_id, before=before)
    return before


@api.get(
    "/api/v1/tokens",
    summary="Your API tokens (every member's with all=true)",
    response=TokenList,
    permission=Permission.TOKENS_OWN,
    query=TokenQuery,
    errors=(400, 403),
)
async def list_token_route(request: web.Request) -> web.Response:
    query = query_model(request, TokenQuery)
    principal = principal_of(request)
    if query.all and not principal.can(Permission.TOKENS_ALL):
        raise ProblemError(403, "listing every member's tokens needs tokens:all")
    async with tenant_transaction(request) as conn:
        tokens = await token_list(
            conn, principal.tenant_id, None if query.all else principal.user_id
        )
    return json_response(tokens)


async def token_list(
    conn: asyncpg.Connection, tenant_id: str, user_id: uuid.UUID | None
) -> TokenList:
    """Return the tenant's API tokens (only ``user_id``'s when given, revoked ones included),
    newest first."""
    tokens = await list_tokens(conn, tenant_id, user_id)
    return TokenList(items=[Token.model_validate(t, from_attributes=True) for t in tokens])


@api.post(
    "/api/v1/tokens",
    summary="Create an API token for yourself; its text is shown once",
    response=CreatedToken,
    permission=Permission.TOKENS_OWN,
    body=TokenCreate,
    status=201,
    errors=(400, 415, 422),
)
async def create_token_route(request: web.Request) -> web.Response:
    body: TokenCreate = await json_body(request, TokenCreate)
    async with tenant_transaction(request) as conn:
        created = await issue_token(request, conn, body)
    return json_response(created, status=201)


async def issue_token(
    request: web.Request, conn: asyncpg.Connection, body: TokenCreate
) -> CreatedToken:
    """Create an API token for the caller as ``body`` asks; return it with its text (shown
    this once); audited.

    Raises ProblemError 422 for an unknown scope or a past expiry, 403 for a token asking more
    scopes than the token calling.
    """
    principal = principal_of(request)
    if not set(body.scopes) <= set(SCOPES):
        raise ProblemError(
            422,
            f"scopes must be some of {', '.join(SCOPES)}",
            errors=[{"field": "scopes", "message": "unknown scope"}],
        )
    if principal.scopes is not None and not set(body.scopes) <= principal.scopes:
        raise ProblemError(403, "a token cannot create a token with more scopes than its own")
    if body.expires_at is not None and body.expires_at <= datetime.now(body.expires_at.tzinfo):
        raise ProblemError(
            422,
            "expires_at is in the past",
            errors=[{"field": "expires_at", "message": "must be in the future"}],
        )
    token_id, text = await create_token(
        conn,
        principal.tenant_id,
        principal.user_id,
        name=body.name,
        scopes=tuple(body.scopes),
        expires_at=body.expires_at,
    )
    (info,) = [
        t
        for t in await list_tokens(conn, principal.tenant_id, principal.user_id)
        if t.id == token_id
    ]
    await record_change(
        request,
        conn,
        "create_token",
        "token",
        token_id,
        after={"name": body.name, "scopes": body.scopes},
    )
    return CreatedToken.model_validate(
        {**Token.model_validate(info, from_attributes=True).model_dump(), "token": text}
    )


@api.delete(
    "/api/v1/tokens/{token_id}",
    summary="Revoke an API token (yours, or anyone's with tokens:all)",
    response=Removed,
    permission=Permission.TOKENS_OWN,
    path_params={"token_id": TOKEN_ID},
    errors=(400, 404),
)
async def revoke_token_route(request: web.Request) -> web.Response:
    token_id = path_uuid(request, "token_id")
    async with tenant_transaction(request) as conn:
        await withdraw_token(request, conn, token_id)
    return json_response(Removed(removed=True))


async def withdraw_token(
    request: web.Request, conn: asyncpg.Connection, token_id: uuid.UUID
) -> None:
    """Revoke the live API token ``token_id`` (the caller's own, or anyone's with
    ``tokens:all``) at once; audited.

    Raises ProblemError 404 when no such live token is the caller's to revoke.
    """
    principal = principal_of(request)
    owner = await conn.fetchval(
        "SELECT user_id FROM api_tokens WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
        principal.tenant_id,
        token_id,
    )
    if owner is None or (owner != principal.user_id and not principal.can(Permission.TOKENS_ALL)):
        raise ProblemError(404, f"no live token {token_id}")
    await revoke_token(conn, principal.tenant_id, token_id)
    request.app[PRINCIPALS].forget_token(token_id)
    await record_change(request, conn, "revoke_token", "token", token_id)
