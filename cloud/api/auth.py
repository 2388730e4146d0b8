"""``/api/v1/auth``: log in and out with a password, and who am I."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud import audit
from fleetlink.cloud.api.access import CSRF_HEADER, principal_of, record_change
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.rest import json_body
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import FIELD_CIPHER, LOGIN_LIMITER, POOL, SETTINGS
from fleetlink.cloud.auth import totp
from fleetlink.cloud.auth.accounts import LoginRefused, login
from fleetlink.cloud.auth.digests import same
from fleetlink.cloud.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.auth.sessions import (
    COOKIE,
    create_session,
    end_session,
    session_principal,
)

api = ResourceRoutes("auth")
routes = api.routes


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(
        None, pattern=r"^[0-9]{6}$", description="The one-time code, for users with TOTP on"
    )


class Me(BaseModel):
    tenant: str
    user_id: uuid.UUID
    email: str
    role: Role
    via: str = Field(description="'session' or 'token'")
    scopes: list[str] | None = Field(None, description="The API token's scopes")
    permissions: list[str]


class LoginResult(Me):
    csrf_token: str = Field(description="Send it in X-CSRF-Token with every unsafe request")
    expires_at: datetime


class LoggedOut(BaseModel):
    logged_out: bool


def _secure(request: web.Request) -> bool:
    mode = request.app[SETTINGS].cookie_secure
    return mode == "always" or (mode == "auto" and request.secure)


@api.post(
    "/api/v1/auth/login",
    summary="Log in with a password; sets the session cookie",
    response=LoginResult,
    public=True,
    body=LoginRequest,
    errors=(400, 401, 415, 422, 429),
)
async def login_route(request: web.Request) -> web.Response:
    wait_s = request.app[LOGIN_LIMITER].take(f"login:{request.remote}")
    if wait_s:
        raise ProblemError(
            429,
            "too many login attempts from this address",
            headers={"Retry-After": RateLimiter.retry_after(wait_s)},
        )
    body: LoginRequest = await json_body(request, LoginRequest)
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        try:
            cipher = request.app[FIELD_CIPHER]
            member = await login(
                conn,
                body.tenant,
                body.email,
                body.password,
                second_factor=lambda user_id, stored: totp.verify(
                    cipher, user_id, stored, body.totp
                ),
            )
        except LoginRefused as refused:
            if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", body.tenant):
                await audit.record(
                    conn,
                    body.tenant,
                    body.email.strip().lower()[:254],
                    "login_failed",
                    "session",
                    remote=request.remote,
                )
            detail = "wrong tenant, e-mail, password or one-time code"
            if refused.locked_until is not None:
                detail = "too many failed logins: the account is locked for a while"
            raise ProblemError(401, detail) from None
        session_id, csrf, expires = await create_session(
            conn, body.tenant, member.user_id, timedelta(hours=settings.session_hours)
        )
        await audit.record(
            conn, body.tenant, member.email, "login", "session", remote=request.remote
        )
    result = LoginResult(
        tenant=body.tenant,
        user_id=member.user_id,
        email=member.email,
        role=member.role,
        via="session",
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[member.role]),
        csrf_token=csrf,
        expires_at=expires,
    )
    response = web.json_response(text=result.model_dump_json())
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        secure=_secure(request),
        samesite="Lax",
        path="/",
    )
    return response


@api.post(
    "/api/v1/auth/logout",
    summary="End the session of the cookie sent",
    response=LoggedOut,
    public=True,
)
async def logout_route(request: web.Request) -> web.Response:
    session_id = request.cookies.get(COOKIE)
    principal = await session_principal(request.app[POOL], session_id) if session_id else None
    if session_id and principal is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not principal.csrf_token or not same(sent, principal.csrf_token):
            raise ProblemError(403, f"send the session's CSRF token in {CSRF_HEADER}")
        await end_session(request.app[POOL], session_id)
    response = web.json_response(text=LoggedOut(logged_out=True).model_dump_json())
    response.del_cookie(COOKIE, path="/")
    return response


@api.get(
    "/api/v1/auth/me",
    summary="Who the credentials sent belong to, and what they may do",
    response=Me,
    permission=Permission.ACCOUNT_READ,
)
async def me_route(request: web.Request) -> web.Response:
    principal = principal_of(request)
    me = Me(
        tenant=principal.tenant_id,
        user_id=principal.user_id,
        email=principal.email,
        role=principal.role,
        via=principal.via,
        scopes=sorted(principal.scopes) if principal.scopes is not None else None,
        permissions=sorted(p.value for p in Permission if principal.can(p)),
    )
    return web.json_response(text=me.model_dump_json())


class TotpSetup(BaseModel):
    secret: str = Field(description="The base32 secret, for apps that take it typed in")
    otpauth_uri: str = Field(description="The otpauth:// URI, for apps that scan a QR code")


class TotpCode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[0-9]{6}$")


class TotpState(BaseModel):
    enabled: bool


@api.post(
    "/api/v1/auth/totp",
    summary="Start turning on a second login factor: a new TOTP secret for your app",
    response=TotpSetup,
    permission=Permission.ACCOUNT_READ,
)
async def totp_setup(request: web.Request) -> web.Response:
    setup = await start_totp(request)
    return web.json_response(text=setup.model_dump_json())


async def start_totp(request: web.Request) -> TotpSetup:
    """Store a new (not yet confirmed) TOTP secret for the caller; return it and its URI.

    Raises ProblemError 409 when the caller's TOTP is on already.
    """
    principal = principal_of(request)
    stored, secret, uri = totp.new_secret(
        request.app[FIELD_CIPHER], principal.user_id, principal.email
    )
    async with request.app[POOL].acquire() as conn:
        enabled = await conn.fetchval(
            "SELECT totp_enabled FROM users WHERE id = $1", principal.user_id
        )
        if enabled:
            raise ProblemError(409, "TOTP is on already; turn it off first to change the secret")
        await conn.execute(
            "UPDATE users SET totp_secret_enc = $2 WHERE id = $1", principal.user_id, stored
        )
    return TotpSetup(secret=secret, otpauth_uri=uri)


async def set_totp(request: web.Request, code: str, enabled: bool) -> TotpState:
    """Turn the caller's TOTP on (or off) when ``code`` is their current code; audited.

    Raises ProblemError 422 when the code does not match the stored secret.
    """
    principal = principal_of(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        stored = await conn.fetchval(
            "SELECT totp_secret_enc FROM users WHERE id = $1 FOR UPDATE", principal.user_id
        )
        if not totp.verify(request.app[FIELD_CIPHER], principal.user_id, stored, code):
            raise ProblemError(
                422, "the code does not match", errors=[{"field": "code", "message": "wrong"}]
            )
        await conn.execute(
            "UPDATE users SET totp_enabled = $2, totp_secret_enc = CASE WHEN $2 "
            "THEN totp_secret_enc END WHERE id = $1",
            principal.user_id,
            enabled,
        )
        await record_change(
            request,
            conn,
            "totp_on" if enabled else "totp_off",
            "user",
            principal.user_id,
        )
    return TotpState(enabled=enabled)


async def _set_totp(request: web.Request, enabled: bool) -> web.Response:
    body: TotpCode = await json_body(request, TotpCode)
    state = await set_totp(request, body.code, enabled)
    return web.json_response(text=state.model_dump_json())


@api.post(
    "/api/v1/auth/totp/confirm",
    summary="Turn the second factor on with a code from your app",
    response=TotpState,
    permission=Permission.ACCOUNT_READ,
    body=TotpCode,
    errors=(400, 415, 422),
)
async def totp_confirm(request: web.Request) -> web.Response:
    return await _set_totp(request, True)


@api.post(
    "/api/v1/auth/totp/disable",
    summary="Turn the second factor off with a current code",
    response=TotpState,
    permission=Permission.ACCOUNT_READ,
    body=TotpCode,
    errors=(400, 415, 422),
)
async def totp_disable(request: web.Request) -> web.Response:
    return await _set_totp(request, False)


class TotpStatus(BaseModel):
    enabled: bool = Field(description="Whether every password login needs a code")
    pending: bool = Field(description="Whether a new secret waits for its first code")


async def totp_status(request: web.Request) -> TotpStatus:
    """Return whether the caller's TOTP is on, or started and waiting for a code."""
    principal = principal_of(request)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT totp_enabled, totp_secret_enc IS NOT NULL AS has_secret "
            "FROM users WHERE id = $1",
            principal.user_id,
        )
    enabled = bool(row and row["totp_enabled"])
    return TotpStatus(enabled=enabled, pending=bool(row and row["has_secret"]) and not enabled)
