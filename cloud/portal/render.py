"""Rendering shared by every portal page: the layout's context and the HTML error page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from fleetlink.cloud.api.access import PRINCIPAL
from fleetlink.cloud.auth.principal import Principal
from fleetlink.cloud.portal.keys import PORTAL_PAGES

LOGIN_PATH = "/portal/login"
HOME_PATH = "/portal/"


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str
    current: bool


def navigation(request: web.Request, principal: Principal, current: str) -> list[NavEntry]:
    """Return the navigation entries ``principal``'s role may open, marking page ``current``."""
    return [
        NavEntry(p.nav, p.path, p.name == current)
        for p in request.app[PORTAL_PAGES]
        if p.nav is not None and p.visible_to(principal)
    ]


def context(request: web.Request, current: str) -> dict[str, Any]:
    """Return the template context of the layout: the caller, the navigation and the CSRF
    token forms echo (an empty navigation before login)."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        return {"request": request, "principal": None, "nav": [], "csrf_token": ""}
    return {
        "request": request,
        "principal": principal,
        "nav": navigation(request, principal, current),
        "csrf_token": principal.csrf_token or "",
    }


_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    422: "Not accepted",
    429: "Too many requests",
}


def render_error(request: web.Request, status: int, detail: str, current: str = "") -> web.Response:
    """Return the portal's HTML error page with ``status`` and ``detail``."""
    values = context(request, current)
    values.update(status=status, detail=detail, title=_TITLES.get(status, "Error"))
    return aiohttp_jinja2.render_template("error.html", request, values, status=status)
