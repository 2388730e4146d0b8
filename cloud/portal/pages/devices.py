"""Devices and installs (``/portal/devices``): the devices with their state, the enrollment
tokens (create and revoke, for roles that may change devices) and the latest install reports.
"""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.access import principal_of, tenant_transaction
from fleetlink.cloud.api.devices import DeviceList, DeviceQuery, device_list
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.provisioning import (
    ReportList,
    TokenCreate,
    TokenCreated,
    TokenList,
    install_reports,
    issue_token,
    revoke_enrollment_token,
    token_list,
)
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_errors import field_errors
from fleetlink.cloud.portal.form_page import page_after_form, posted_fields
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.render import render_error

RECENT_REPORTS = 20
TOKENS_PATH = "/portal/devices/tokens"


class DevicesPage(BaseModel):
    query: DeviceQuery
    devices: DeviceList
    tokens: TokenList
    reports: ReportList
    may_change: bool


async def load(request: web.Request, conn: asyncpg.Connection) -> DevicesPage:
    """Return the page of devices the query string asks for, the enrollment tokens and the
    latest install reports."""
    principal = principal_of(request)
    tenant = principal.tenant_id
    query = form_query(request, DeviceQuery) if request.method == "GET" else DeviceQuery()
    return DevicesPage(
        query=query,
        devices=await device_list(conn, tenant, query),
        tokens=await token_list(conn, tenant),
        reports=await install_reports(conn, tenant, limit=RECENT_REPORTS),
        may_change=principal.can(Permission.DEVICES_WRITE),
    )


page = Page(
    name="devices",
    path="/portal/devices",
    title="Devices and installs",
    permission=Permission.DEVICES_READ,
    load=load,
    nav="Devices",
)


async def create_token(request: web.Request) -> web.StreamResponse:
    """Create an enrollment token from the form; show its secret once, or the form's errors
    next to their fields (422)."""
    form = await posted_fields(request)
    fields = {k: form[k].strip() for k in ("label", "hours") if form.get(k, "").strip()}
    async with tenant_transaction(request) as conn:
        try:
            body = TokenCreate.model_validate(fields)
        except ValidationError as exc:
            return await page_after_form(
                request, conn, page, 422, errors=field_errors(exc), form=form
            )
        created: TokenCreated = await issue_token(request, conn, body)
        return await page_after_form(request, conn, page, 201, created=created)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke the enrollment token of the path; show the page with a notice (404 page for a
    token the tenant does not have)."""
    try:
        token_id: uuid.UUID = path_uuid(request, "token_id")
        async with tenant_transaction(request) as conn:
            revoked = await revoke_enrollment_token(request, conn, token_id)
            notice = f"Token {revoked.id} is revoked."
            return await page_after_form(request, conn, page, notice=notice)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, page.name)


routes = web.RouteTableDef()
routes.post(TOKENS_PATH)(portal_guard(create_token, Permission.DEVICES_WRITE))
routes.post(TOKENS_PATH + "/{token_id}/revoke")(
    portal_guard(revoke_token, Permission.DEVICES_WRITE)
)
