"""The access check of every non-public route, and the tenant-scoped transaction it opens.

A request is authenticated by ``Authorization: Bearer <API token>`` or by the session cookie
(then unsafe methods must echo the session's CSRF token in ``X-CSRF-Token``), rate limited per
token or user, and checked against the route's permission. Handlers then read and write
through :func:`tenant_transaction`, which runs as the database role ``fleetlink_api`` with the
caller's tenant set, so row-level security hides every other tenant's rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud import audit
from fleetlink.cloud.api.problems import Handler, ProblemError
from fleetlink.cloud.app_keys import API_POOL, LIMITER, POOL, PRINCIPALS
from fleetlink.cloud.auth.api_tokens import token_principal
from fleetlink.cloud.auth.digests import same
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.auth.principal import Principal
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.auth.sessions import COOKIE, session_principal

PRINCIPAL = "fleetlink.principal"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fleetlink"'}


async def authenticate(request: web.Request) -> Principal:
    """Return the caller; raise ProblemError(401) for missing or bad credentials."""
    pool = request.app[POOL]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ProblemError(401, "use 'Authorization: Bearer <token>'", headers=_CHALLENGE)
        cache = request.app[PRINCIPALS]
        principal = cache.get(token.strip())
        if principal is None:
            principal = await token_principal(pool, token.strip())
            if principal is not None:
                cache.put(token.strip(), principal)
        if principal is None:
            raise ProblemError(
                401, "the API token is unknown, expired or revoked", headers=_CHALLENGE
            )
        return principal
    session_id = request.cookies.get(COOKIE)
    if session_id:
        principal = await session_principal(pool, session_id)
        if principal is None:
            raise ProblemError(401, "the session has ended; log in again", headers=_CHALLENGE)
        return principal
    raise ProblemError(
        401, "log in (POST /api/v1/auth/login) or send an API token", headers=_CHALLENGE
    )


def guard(handler: Handler, permission: Permission) -> Handler:
    """Return ``handler`` behind authentication, rate limit, CSRF and ``permission`` checks."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        principal = await authenticate(request)
        wait_s = request.app[LIMITER].take(principal.limit_key)
        if wait_s:
            raise ProblemError(
                429,
                "too many requests for this token or user",
                headers={"Retry-After": RateLimiter.retry_after(wait_s)},
            )
        if principal.via == "session" and request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not principal.csrf_token or not same(sent, principal.csrf_token):
                raise ProblemError(403, f"send the session's CSRF token in {CSRF_HEADER}")
        if not principal.can(permission, safe=request.method in SAFE_METHODS):
            how = f"a {','.join(sorted(principal.scopes))} token" if principal.scopes else "you"
            raise ProblemError(
                403, f"the role {principal.role.value} ({how}) may not do this: {permission.value}"
            )
        request[PRINCIPAL] = principal
        return await handler(request)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


def principal_of(request: web.Request) -> Principal:
    """Return the caller of a guarded route."""
    principal: Principal = request[PRINCIPAL]
    return principal


@contextlib.asynccontextmanager
async def tenant_transaction(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    """Yield a connection that sees only the caller's tenant: in a transaction for requests
    that change data; a read (GET) runs its statements without one, to save round trips.

    The tenant is a session setting of the pooled connection; the pool's reset on release
    (``RESET ALL``) clears it before the connection serves anyone else.
    """
    principal = principal_of(request)
    async with request.app[API_POOL].acquire() as conn:
        await conn.execute("SELECT set_config('fleetlink.tenant', $1, false)", principal.tenant_id)
        if request.method in SAFE_METHODS:
            yield conn
        else:
            async with conn.transaction():
                yield conn


async def record_change(
    request: web.Request,
    conn: asyncpg.Connection,
    action: str,
    resource: str,
    resource_id: object,
    *,
    before: BaseModel | dict[str, Any] | None = None,
    after: BaseModel | dict[str, Any] | None = None,
) -> None:
    """Write the audit entry of the caller's change, in the change's own transaction."""
    principal = principal_of(request)

    def snapshot(value: BaseModel | dict[str, Any] | None) -> dict[str, Any] | None:
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value

    await audit.record(
        conn,
        principal.tenant_id,
        principal.actor,
        action,
        resource,
        resource_id,
        before=snapshot(before),
        after=snapshot(after),
        remote=request.remote,
    )
