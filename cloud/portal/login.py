"""The portal's login (password, then the one-time code for users with TOTP on) and logout.

Before a session exists, forms are protected by a double-submit token: a random value in the
``fl_login_csrf`` cookie (SameSite=Strict) that the form must repeat. The session cookie is
the API's (``fl_session``), set ``SameSite=Strict`` and HttpOnly here.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from fleetlink.cloud import audit
from fleetlink.cloud.app_keys import FIELD_CIPHER, LOGIN_LIMITER, POOL, SETTINGS
from fleetlink.cloud.auth import totp
from fleetlink.cloud.auth.accounts import LoginRefused, SecondFactorNeeded, login
from fleetlink.cloud.auth.digests import new_secret, same
from fleetlink.cloud.auth.sessions import COOKIE, create_session, end_session, session_principal
from fleetlink.cloud.portal.guard import CSRF_FIELD
from fleetlink.cloud.portal.keys import PENDING_LOGINS
from fleetlink.cloud.portal.render import HOME_PATH, LOGIN_PATH, render_error

LOGIN_CSRF_COOKIE = "fl_login_csrf"
PENDING_COOKIE = "fl_login_pending"
REFUSED = "Wrong organisation, e-mail or password."
LOCKED = "Too many failed logins: the account is locked for 15 minutes."

routes = web.RouteTableDef()


def safe_next(value: object) -> str:
    """Return ``value`` if it is a portal path to come back to after login, else the home page
    (never another site: no scheme, no ``//``)."""
    if isinstance(value, str) and value.startswith("/portal/") and "//" not in value:
        return value if not value.startswith(LOGIN_PATH) else HOME_PATH
    return HOME_PATH


def _secure(request: web.Request) -> bool:
    mode = request.app[SETTINGS].cookie_secure
    return mode == "always" or (mode == "auto" and request.secure)


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
        path="/portal" if name != COOKIE else "/",
    )


def _form_page(
    request: web.Request,
    template: str,
    values: dict[str, Any],
    status: int = 200,
) -> web.Response:
    """Render a login form with a fresh double-submit token."""
    token = new_secret()
    values = {"request": request, "principal": None, "nav": [], "csrf_token": token, **values}
    response = aiohttp_jinja2.render_template(template, request, values, status=status)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 900)
    return response


async def _login_form_checked(request: web.Request) -> dict[str, str] | web.Response:
    """Return the posted fields, or the error page for a missing or wrong login token."""
    form = await request.post()
    sent, kept = form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE)
    if not isinstance(sent, str) or not kept or not same(sent, kept):
        return render_error(
            request, 403, "The login form has expired; open the login page again and retry."
        )
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _limited(request: web.Request) -> web.Response | None:
    wait_s = request.app[LOGIN_LIMITER].take(f"login:{request.remote}")
    if not wait_s:
        return None
    response = render_error(
        request, 429, f"Too many login attempts from this address; wait {wait_s:.0f} s."
    )
    response.headers["Retry-After"] = str(max(1, round(wait_s)))
    return response


@routes.get(LOGIN_PATH)
async def login_page(request: web.Request) -> web.StreamResponse:
    """Show the login form (or go home when the session cookie is still good)."""
    next_path = safe_next(request.query.get("next"))
    session_id = request.cookies.get(COOKIE)
    if session_id and await session_principal(request.app[POOL], session_id) is not None:
        raise web.HTTPSeeOther(next_path)
    return _form_page(
        request,
        "login.html",
        {"title": "Log in", "next": next_path, "error": None, "tenant": "", "email": ""},
    )


async def _start_session(
    request: web.Request, conn: asyncpg.Connection, tenant: str, user_id: uuid.UUID, email: str
) -> web.HTTPSeeOther:
    """Return the redirect (to raise) that starts the session and goes where login was asked."""
    settings = request.app[SETTINGS]
    session_id, _, _ = await create_session(
        conn, tenant, user_id, timedelta(hours=settings.session_hours)
    )
    await audit.record(conn, tenant, email, "login", "session", remote=request.remote)
    form = await request.post()
    response = web.HTTPSeeOther(safe_next(form.get("next")))
    _set_cookie(request, response, COOKIE, session_id, int(settings.session_hours * 3600))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/portal")
    response.del_cookie(PENDING_COOKIE, path="/portal")
    return response


@routes.post(LOGIN_PATH)
async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check the password; go on to the code form for users with TOTP on."""
    form = await _login_form_checked(request)
    if isinstance(form, web.Response):
        return form
    if limited := _limited(request):
        return limited
    tenant, email = form.get("tenant", "").strip(), form.get("email", "").strip()
    next_path = safe_next(form.get("next"))
    values = {"title": "Log in", "next": next_path, "tenant": tenant, "email": email}
    if not tenant or not email or not form.get("password"):
        return _form_page(
            request, "login.html", {**values, "error": "Fill in all three fields."}, 422
        )
    async with request.app[POOL].acquire() as conn:
        try:
            member = await login(conn, tenant, email, form["password"])
        except SecondFactorNeeded as needed:
            pending_id = await request.app[PENDING_LOGINS].start(conn, tenant, needed.user_id)
            response = _form_page(
                request, "login_code.html", {**values, "title": "One-time code", "error": None}
            )
            _set_cookie(request, response, PENDING_COOKIE, pending_id, 300)
            return response
        except LoginRefused as refused:
            if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant):
                await audit.record(
                    conn,
                    tenant,
                    email.lower()[:254],
                    "login_failed",
                    "session",
                    remote=request.remote,
                )
            error = LOCKED if refused.locked_until is not None else REFUSED
            return _form_page(request, "login.html", {**values, "error": error}, 401)
        raise await _start_session(request, conn, tenant, member.user_id, member.email)


@routes.post(LOGIN_PATH + "/code")
async def code_submit(request: web.Request) -> web.StreamResponse:
    """Check the one-time code of a pending login; start the session when it matches."""
    form = await _login_form_checked(request)
    if isinstance(form, web.Response):
        return form
    if limited := _limited(request):
        return limited
    pendings = request.app[PENDING_LOGINS]
    pending_id = request.cookies.get(PENDING_COOKIE, "")
    next_path = safe_next(form.get("next"))
    async with request.app[POOL].acquire() as conn:
        pending = await pendings.get(conn, pending_id)
        if pending is None:
            return _form_page(
                request,
                "login.html",
                {
                    "title": "Log in",
                    "next": next_path,
                    "tenant": "",
                    "email": "",
                    "error": "The login has expired; enter your password again.",
                },
                401,
            )
        row = await conn.fetchrow(
            "SELECT email, totp_secret_enc FROM users WHERE id = $1 AND NOT disabled",
            pending.user_id,
        )
        code = form.get("code", "").strip()
        if row is not None and totp.verify(
            request.app[FIELD_CIPHER], pending.user_id, row["totp_secret_enc"], code
        ):
            await pendings.finish(conn, pending_id)
            raise await _start_session(
                request, conn, pending.tenant_id, pending.user_id, row["email"]
            )
        await audit.record(
            conn,
            pending.tenant_id,
            row["email"] if row else str(pending.user_id),
            "login_failed",
            "session",
            remote=request.remote,
        )
        may_retry = await pendings.failed(conn, pending_id)
    if not may_retry:
        values = {"title": "Log in", "next": next_path, "tenant": pending.tenant_id, "email": ""}
        error = "Too many wrong codes; enter your password again."
        return _form_page(request, "login.html", {**values, "error": error}, 401)
    values = {"title": "One-time code", "next": next_path, "error": "That code does not match."}
    return _form_page(request, "login_code.html", values, 401)


@routes.post("/portal/logout")
async def logout_submit(request: web.Request) -> web.StreamResponse:
    """End the session of the cookie (the form must carry its CSRF token) and go to login."""
    session_id = request.cookies.get(COOKIE)
    principal = await session_principal(request.app[POOL], session_id) if session_id else None
    if session_id and principal is not None:
        form = await request.post()
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not same(sent, principal.csrf_token or ""):
            return render_error(request, 403, "The logout form's CSRF token is not this session's.")
        await end_session(request.app[POOL], session_id)
        async with request.app[POOL].acquire() as conn:
            await audit.record(
                conn,
                principal.tenant_id,
                principal.email,
                "logout",
                "session",
                remote=request.remote,
            )
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(COOKIE, path="/")
    raise response
