"""The drivers (``/portal/drivers``), one driver's scorecard and badges
(``/portal/drivers/{driver_id}``) and the leaderboard (``/portal/leaderboard``). Roles that
may change drivers add one on the list (the API's add_driver) and put a driver in a vehicle on
the driver's page (the API's assign_vehicle) and edit their profile there (the API's
change_driver, with the version the form was shown with as its If-Match); licence numbers
and phones are shown and asked for only with drivers:personal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.day_range import DayRange
from fleetlink.cloud.api.drivers import (
    PERSONAL,
    Driver,
    DriverAssignmentRequest,
    DriverCreate,
    DriverList,
    DriverPatch,
    DriverQuery,
    add_driver,
    assign_vehicle,
    change_driver,
    driver_by_id,
    driver_list,
)
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.rest import MAX_PAGE, etag
from fleetlink.cloud.api.scores import (
    BadgeList,
    Leaderboard,
    LeaderboardQuery,
    driver_badges_of,
    driver_scorecard_of,
    leaderboard,
    period_of,
)
from fleetlink.cloud.api.vehicles import Vehicle, VehicleQuery, vehicle_list
from fleetlink.cloud.app_keys import FIELD_CIPHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_page import FormRefused, answer_form, posted_fields
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page, twin_of
from fleetlink.cloud.portal.render import render_error
from fleetlink.cloud.portal.vehicle_form import (
    add_refusal,
    edit_refusal,
    invalid_fields,
    parsed,
    profile_fields,
    refusal_errors,
)
from fleetlink.cloud.scoring.scorecard import Scorecard

PATH = "/portal/drivers"
DRIVER_PATH = PATH + "/{driver_id}"
NEW_DRIVER_FIELDS = ("name", "employee_number", *PERSONAL, "tags")


class DriversPage(BaseModel):
    query: DriverQuery
    drivers: DriverList
    may_change: bool = False
    personal: bool = False


class DriverPage(BaseModel):
    driver: Driver
    scorecard: Scorecard | None = None
    badges: BadgeList | None = None
    personal: bool = False
    vehicles: list[Vehicle] | None = Field(
        None, description="The vehicles a driver may be put in, for roles that may change drivers"
    )


class LeaderboardPage(BaseModel):
    query: LeaderboardQuery
    board: Leaderboard


def _personal(request: web.Request) -> bool:
    return principal_of(request).can(Permission.DRIVERS_PERSONAL)


async def load_list(request: web.Request, conn: asyncpg.Connection) -> DriversPage:
    """Return the page of drivers the query string asks for."""
    query = form_query(request, DriverQuery)
    tenant = principal_of(request).tenant_id
    cipher = request.app[FIELD_CIPHER]
    return DriversPage(
        query=query,
        drivers=await driver_list(conn, tenant, query, cipher, _personal(request)),
        may_change=principal_of(request).can(Permission.DRIVERS_WRITE),
        personal=_personal(request),
    )


async def load_driver(request: web.Request, conn: asyncpg.Connection) -> DriverPage:
    """Return the driver with, for roles that may change drivers, the vehicles to put them
    in, and, for roles that may read scores, the scorecard over the days
    the query string asks for (``from``, ``to``; default: the last 7) and the badges.

    Raises ProblemError(404) for a driver the caller's tenant does not have.
    """
    principal = principal_of(request)
    driver_id = path_uuid(request, "driver_id")
    driver = await driver_by_id(
        conn, principal.tenant_id, driver_id, request.app[FIELD_CIPHER], _personal(request)
    )
    vehicles = None
    if principal.can(Permission.DRIVERS_WRITE):
        listed = await vehicle_list(conn, principal.tenant_id, VehicleQuery(limit=MAX_PAGE))
        vehicles = [v for v in listed.items if v.status != "retired"]
    if not principal.can(Permission.SCORES_READ):
        return DriverPage(driver=driver, vehicles=vehicles, personal=_personal(request))
    first, last = form_query(request, DayRange).days()
    return DriverPage(
        driver=driver,
        personal=_personal(request),
        vehicles=vehicles,
        scorecard=await driver_scorecard_of(conn, principal.tenant_id, driver_id, first, last),
        badges=await driver_badges_of(conn, principal.tenant_id, driver_id),
    )


async def load_leaderboard(request: web.Request, conn: asyncpg.Connection) -> LeaderboardPage:
    """Return the leaderboard of the week or month the query string asks for."""
    query = form_query(request, LeaderboardQuery)
    first, last = period_of(query.period, query.on or datetime.now(UTC).date())
    board = await leaderboard(conn, principal_of(request).tenant_id, query.period, first, last)
    return LeaderboardPage(query=query, board=board)


page = Page(
    name="drivers",
    path=PATH,
    title="Drivers",
    permission=Permission.DRIVERS_READ,
    load=load_list,
    nav="Drivers",
)
driver_page = Page(
    name="driver",
    path=DRIVER_PATH,
    title="Driver",
    permission=Permission.DRIVERS_READ,
    load=load_driver,
)
leaderboard_page = Page(
    name="leaderboard",
    path="/portal/leaderboard",
    title="Leaderboard",
    permission=Permission.SCORES_READ,
    load=load_leaderboard,
    nav="Leaderboard",
)


def _invalid(exc: ValidationError) -> dict[str, str]:
    """The model's complaints by field, a phone that does not match the API's pattern told
    in words rather than as the pattern."""
    errors = invalid_fields(exc)
    if "pattern" in errors.get("phone", ""):
        errors["phone"] = "Use digits, spaces and + ( ) . / - only, 3 to 32 characters."
    return errors


def _form_fields(request: web.Request) -> tuple[str, ...]:
    """The driver form's fields the caller may fill: licence number and phone only with
    drivers:personal."""
    if _personal(request):
        return NEW_DRIVER_FIELDS
    return tuple(n for n in NEW_DRIVER_FIELDS if n not in PERSONAL)


async def _add(request: web.Request) -> web.StreamResponse:
    """Add the form's driver through the API's add_driver (licence number and phone
    encrypted, audited); show the list with a link to them (201), or the errors next to their
    fields with nothing stored (422; 409 for an employee number in use)."""
    form = await posted_fields(request)

    async def add(conn: asyncpg.Connection) -> dict[str, Any]:
        fields = profile_fields(form, _form_fields(request))
        present = {k: v for k, v in fields.items() if v is not None}
        body = parsed(DriverCreate, present, _invalid)
        try:
            return {"created": await add_driver(request, conn, body)}
        except ProblemError as refused:
            raise add_refusal(refused) from None

    return await answer_form(request, page, form, add, status=201)


async def _assign(request: web.Request) -> web.StreamResponse:
    """Put the driver in the form's vehicle (empty: no vehicle) through the API's
    assign_vehicle (audited); show the page with a notice, or the refusal next to the choice
    with nothing changed (422; 409 for a retired driver)."""
    form = await posted_fields(request)
    try:
        driver_id = path_uuid(request, "driver_id")

        async def assign(conn: asyncpg.Connection) -> dict[str, Any]:
            chosen = {"vehicle_id": form.get("vehicle_id", "").strip() or None}
            body = parsed(DriverAssignmentRequest, chosen, _invalid)
            try:
                driver = await assign_vehicle(request, conn, driver_id, body)
            except ProblemError as refused:
                if refused.status == 404:
                    raise
                status = 409 if refused.status == 409 else 422
                raise FormRefused(status, refusal_errors(refused)) from None
            where = "in a vehicle" if driver.vehicle_id else "in no vehicle"
            return {"notice": f"{driver.name} is now {where}."}

        json_url = twin_of(DRIVER_PATH.format(driver_id=driver_id))
        return await answer_form(request, driver_page, form, assign, json_url=json_url)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, driver_page.name)


async def _edit(request: web.Request) -> web.StreamResponse:
    """Change the driver's name, employee number, licence number, phone and tags to the
    form's through the API's change_driver, if the driver is still at the form's ``version``;
    show the page with a notice, or the errors next to their fields with nothing changed
    (422; 409 for an employee number in use or a driver changed since the form was shown)."""
    form = await posted_fields(request)
    try:
        driver_id = path_uuid(request, "driver_id")

        async def save(conn: asyncpg.Connection) -> dict[str, Any]:
            body = parsed(DriverPatch, profile_fields(form, _form_fields(request)), _invalid)
            try:
                driver = await _apply(request, conn, driver_id, body, form.get("version", ""))
            except ProblemError as refused:
                raise edit_refusal(refused, "driver") from None
            return {"notice": f"The profile of {driver.name} is saved."}

        json_url = twin_of(DRIVER_PATH.format(driver_id=driver_id))
        return await answer_form(request, driver_page, form, save, json_url=json_url)
    except ProblemError as problem:
        return render_error(request, problem.status, problem.detail, driver_page.name)


async def _apply(
    request: web.Request,
    conn: asyncpg.Connection,
    driver_id: uuid.UUID,
    body: DriverPatch,
    version: str,
) -> Driver:
    """Pass change_driver only the fields that differ from the stored driver, so saving an
    unchanged form neither bumps the version nor writes an audit entry."""
    tenant = principal_of(request).tenant_id
    cipher = request.app[FIELD_CIPHER]
    current = await driver_by_id(conn, tenant, driver_id, cipher, _personal(request))
    changed = {
        k: getattr(body, k)
        for k in body.model_fields_set
        if getattr(body, k) != getattr(current, k)
    }
    if_match = etag(int(version)) if version.isdigit() else ""
    return await change_driver(
        request, conn, driver_id, DriverPatch.model_validate(changed), if_match
    )


routes = web.RouteTableDef()
routes.post(PATH)(portal_guard(_add, Permission.DRIVERS_WRITE))
routes.post(DRIVER_PATH + "/assignment")(portal_guard(_assign, Permission.DRIVERS_WRITE))
routes.post(DRIVER_PATH + "/profile")(portal_guard(_edit, Permission.DRIVERS_WRITE))
