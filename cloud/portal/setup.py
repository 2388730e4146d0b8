"""Wire the portal into the cloud service: templates, static files, pages, headers."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from fleetlink.cloud.portal import login, pwa
from fleetlink.cloud.portal.keys import PENDING_LOGINS, PORTAL_PAGES
from fleetlink.cloud.portal.page import page_routes
from fleetlink.cloud.portal.pages import ACTIONS, PAGES
from fleetlink.cloud.portal.pending_logins import PendingLogins
from fleetlink.cloud.portal.render import HOME_PATH
from fleetlink.cloud.portal.security import portal_headers
from fleetlink.cloud.portal.templating import FILTERS

# Resolved: an editable install links each file, and aiohttp serves no symlinked static file.
HERE = Path(__file__).resolve().parent


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME_PATH)


def setup_portal(app: web.Application) -> None:
    """Serve the portal under ``/portal`` (and redirect ``/`` to it)."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    app[PORTAL_PAGES] = PAGES
    app[PENDING_LOGINS] = PendingLogins()
    app.router.add_get("/", _home)
    app.router.add_get("/portal", _home)
    app.router.add_static("/portal/static/", HERE / "static", append_version=False)
    app.add_routes(login.routes)
    app.add_routes(pwa.routes)
    app.add_routes(page_routes(PAGES))
    for actions in ACTIONS:
        app.add_routes(actions)
    app.on_response_prepare.append(portal_headers)
