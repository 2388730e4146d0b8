"""My account (``/portal/account``): the signed-in user's own two-step login (TOTP), turned on
through the same functions as ``/api/v1/auth/totp`` and its confirm route, and, for roles with
``tokens:own``, their own API tokens (listed, created and revoked as ``/api/v1/tokens`` does).
Every role has the page; it shows only the caller's own account, so its path names no user."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.accounts import (
    TokenCreate,
    TokenList,
    issue_token,
    token_list,
    withdraw_token,
)
from fleetlink.cloud.api.auth import TotpStatus, set_totp, start_totp, totp_status
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.auth.api_tokens import SCOPES
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_errors import field_errors
from fleetlink.cloud.portal.form_page import page_after_form, posted_fields
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error

PATH = "/portal/account"
# Four characters per group, as authenticator apps show secrets for typing.
SECRET_GROUP = 4


class AccountPage(BaseModel):
    email: str
    totp: TotpStatus
    # None for roles without tokens:own.
    tokens: TokenList | None
    scopes: list[str]


async def load(request: web.Request, conn: asyncpg.Connection) -> AccountPage:
    """Return the caller's email address, the state of their two-step login and their own
    API tokens (when their role may have tokens)."""
    principal = principal_of(request)
    may_have_tokens = principal.can(Permission.TOKENS_OWN)
    return AccountPage(
        email=principal.email,
        totp=await totp_status(request),
        tokens=await token_list(conn, principal.tenant_id, principal.user_id)
        if may_have_tokens
        else None,
        scopes=list(SCOPES) if may_have_tokens else [],
    )


page = Page(
    name="account",
    path=PATH,
    title="My account",
    permission=Permission.ACCOUNT_READ,
    load=load,
    nav="My account",
)


def grouped(secret: str) -> str:
    """Return ``secret`` in groups of four characters separated by spaces."""
    return " ".join(secret[i : i + SECRET_GROUP] for i in range(0, len(secret), SECRET_GROUP))


async def start_two_step(request: web.Request) -> web.StreamResponse:
    """Store a new TOTP secret for the caller; show it (grouped) and its otpauth URI with the
    field for the first code, or a notice when two-step login is on already (409)."""
    await posted_fields(request)
    try:
        setup = await start_totp(request)
    except ProblemError as refused:
        async with tenant_transaction(request) as conn:
            errors = {"totp_form": refused.detail[:1].upper() + refused.detail[1:] + "."}
            return await page_after_form(request, conn, page, refused.status, errors=errors)
    async with tenant_transaction(request) as conn:
        return await page_after_form(
            request, conn, page, created=setup, secret_groups=grouped(setup.secret)
        )


async def confirm_two_step(request: web.Request) -> web.StreamResponse:
    """Turn two-step login on with the form's code, as the API's confirm does (audited); a
    code that does not match is shown beside its field (422) and leaves it off."""
    code = (await posted_fields(request)).get("code", "").replace(" ", "").strip()
    error = None
    if len(code) != 6 or not code.isdigit():
        error = "Enter the 6 digits your app shows now."
    else:
        try:
            await set_totp(request, code, True)
        except ProblemError:
            error = "That code does not match; enter the one your app shows now."
    async with tenant_transaction(request) as conn:
        if error is not None:
            return await page_after_form(
                request, conn, page, 422, errors={"code": error}, form={"code": code}
            )
        notice = "Two-step login is on: every login now asks for a code from your app."
        return await page_after_form(request, conn, page, notice=notice)


async def create_token(request: web.Request) -> web.StreamResponse:
    """Create an API token for the caller with the form's name and scopes, as the API does;
    show the page with its text, shown this once (201), or the errors next to their fields."""
    posted = await request.post()
    form = await posted_fields(request)
    fields = {
        "name": form.get("name", "").strip(),
        "scopes": [s for s in posted.getall("scopes", []) if isinstance(s, str)],
    }
    form_values = {f"token_{k}": v for k, v in fields.items()}
    async with tenant_transaction(request) as conn:
        try:
            created = await issue_token(request, conn, TokenCreate.model_validate(fields))
        except ValidationError as exc:
            errors = {f"token_{k}": v for k, v in field_errors(exc).items()}
        except ProblemError as refused:
            errors = {"token_scopes": refused.detail[:1].upper() + refused.detail[1:] + "."}
        else:
            return await page_after_form(request, conn, page, 201, new_token=created)
        return await page_after_form(request, conn, page, 422, errors=errors, form=form_values)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke the caller's API token of the path at once; show the page with a notice."""
    try:
        token_id = path_uuid(request, "token_id")
        async with tenant_transaction(request) as conn:
            await withdraw_token(request, conn, token_id)
            return await page_after_form(
                request, conn, page, notice="The token is revoked: it no longer works."
            )
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)


routes = web.RouteTableDef()
routes.post(f"{PATH}/totp")(portal_guard(start_two_step, Permission.ACCOUNT_READ))
routes.post(f"{PATH}/totp/confirm")(portal_guard(confirm_two_step, Permission.ACCOUNT_READ))
routes.post(f"{PATH}/tokens")(portal_guard(create_token, Permission.TOKENS_OWN))
routes.post(PATH + "/tokens/{token_id}/revoke")(portal_guard(revoke_token, Permission.TOKENS_OWN))
