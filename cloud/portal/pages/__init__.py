"""The portal's pages in navigation order: a new page is one module here plus one entry below.

Each module exposes ``page: Page``; a module with forms also exposes ``routes`` (its POST
actions, each behind ``portal_guard``), listed in ACTIONS.
"""

from __future__ import annotations

from aiohttp import web

from fleetlink.cloud.portal.page import Page
from fleetlink.cloud.portal.pages import (
    account,
    devices,
    drivers,
    inbox,
    live_map,
    maintenance,
    overview,
    settings,
    users,
    vehicle,
    vehicles,
)

PAGES: tuple[Page, ...] = (
    overview.page,
    vehicles.page,
    vehicle.page,
    live_map.page,
    inbox.page,
    drivers.page,
    drivers.driver_page,
    drivers.leaderboard_page,
    maintenance.page,
    devices.page,
    users.page,
    settings.page,
    account.page,
)

ACTIONS: tuple[web.RouteTableDef, ...] = (
    vehicles.routes,
    vehicle.routes,
    drivers.routes,
    inbox.routes,
    maintenance.routes,
    devices.routes,
    users.routes,
    settings.routes,
    live_map.routes,
    account.routes,
)
