"""The portal's application keys (its pages and its pending two-step logins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from fleetlink.cloud.portal.pending_logins import PendingLogins

if TYPE_CHECKING:
    from fleetlink.cloud.portal.page import Page

# The pages in navigation order, as ``pages.PAGES`` lists them (set by ``setup_portal``).
PORTAL_PAGES: web.AppKey[tuple[Page, ...]] = web.AppKey("portal_pages")
PENDING_LOGINS = web.AppKey("portal_pending_logins", PendingLogins)
