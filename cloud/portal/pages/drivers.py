"""The drivers (``/portal/drivers``), one driver's scorecard and badges
(``/portal/drivers/{driver_id}``) and the leaderboard (``/portal/leaderboard``)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.day_range import DayRange
from fleetlink.cloud.api.drivers import Driver, DriverList, DriverQuery, driver_by_id, driver_list
from fleetlink.cloud.api.request_parsing import path_uuid
from fleetlink.cloud.api.scores import (
    BadgeList,
    Leaderboard,
    LeaderboardQuery,
    driver_badges_of,
    driver_scorecard_of,
    leaderboard,
    period_of,
)
from fleetlink.cloud.app_keys import FIELD_CIPHER
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.scoring.scorecard import Scorecard


class DriversPage(BaseModel):
    query: DriverQuery
    drivers: DriverList


class DriverPage(BaseModel):
    driver: Driver
    scorecard: Scorecard | None = None
    badges: BadgeList | None = None


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
        query=query, drivers=await driver_list(conn, tenant, query, cipher, _personal(request))
    )


async def load_driver(request: web.Request, conn: asyncpg.Connection) -> DriverPage:
    """Return the driver with, for roles that may read scores, the scorecard over the days
    the query string asks for (``from``, ``to``; default: the last 7) and the badges.

    Raises ProblemError(404) for a driver the caller's tenant does not have.
    """
    principal = principal_of(request)
    driver_id = path_uuid(request, "driver_id")
    driver = await driver_by_id(
        conn, principal.tenant_id, driver_id, request.app[FIELD_CIPHER], _personal(request)
    )
    if not principal.can(Permission.SCORES_READ):
        return DriverPage(driver=driver)
    first, last = form_query(request, DayRange).days()
    return DriverPage(
        driver=driver,
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
    path="/portal/drivers",
    title="Drivers",
    permission=Permission.DRIVERS_READ,
    load=load_list,
    nav="Drivers",
)
driver_page = Page(
    name="driver",
    path="/portal/drivers/{driver_id}",
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
