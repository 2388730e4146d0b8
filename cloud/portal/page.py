"""One portal page: a model loaded through the API's query functions, shown as HTML and JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.auth.principal import Principal
from fleetlink.cloud.portal.guard import Handler, portal_guard
from fleetlink.cloud.portal.render import context, render_error

Loader = Callable[[web.Request, asyncpg.Connection], Awaitable[BaseModel]]


@dataclass(frozen=True)
class Page:
    """A page at ``path`` and its JSON twin at ``path + '.json'``.

    ``name`` names the template ``pages/<name>.html``; ``load(request, conn)`` returns the
    page's model from the API's query functions (``conn`` sees only the caller's tenant) and
    may raise ProblemError (a 404 shows the error page); ``view(model)`` may add values only
    the template needs; ``nav`` is the navigation label (None
    for pages reached by links only, such as one vehicle's page); ``permission`` is what a
    role needs to open the page and see its navigation entry.
    """

    name: str
    path: str
    title: str
    permission: Permission
    load: Loader
    nav: str | None = None
    # Extra template values derived from the model (charts, map geometry): presentation only,
    # so the JSON twin stays the model itself.
    view: Callable[[Any], dict[str, Any]] | None = None

    def visible_to(self, principal: Principal) -> bool:
        """Return whether ``principal``'s role may open this page."""
        return principal.can(self.permission)


def twin_of(path: str) -> str:
    """Return the path of the JSON twin of the page at ``path`` (``/portal/index.json``
    for ``/portal/``)."""
    return f"{path}index.json" if path.endswith("/") else f"{path}.json"


def page_routes(pages: Iterable[Page]) -> web.RouteTableDef:
    """Return the GET routes of every page and of its JSON twin, behind the portal's guard."""
    routes = web.RouteTableDef()
    for page in pages:
        # The twin first: a path variable would otherwise swallow the ".json" suffix.
        routes.get(twin_of(page.path))(portal_guard(_twin(page), page.permission, json=True))
        routes.get(page.path)(portal_guard(_html(page), page.permission))
    return routes


async def _load(page: Page, request: web.Request) -> BaseModel:
    async with tenant_transaction(request) as conn:
        return await page.load(request, conn)


def _twin(page: Page) -> Handler:
    async def twin(request: web.Request) -> web.StreamResponse:
        model = await _load(page, request)
        return web.json_response(text=model.model_dump_json())

    twin.__name__ = f"{page.name}_json"
    return twin


def _html(page: Page) -> Handler:
    async def html(request: web.Request) -> web.StreamResponse:
        try:
            model = await _load(page, request)
        except ProblemError as problem:
            return render_error(request, problem.status, problem.detail, page.name)
        values = context(request, page.name)
        json_url = twin_of(request.rel_url.path)
        if request.query_string:
            json_url = f"{json_url}?{request.query_string}"
        values.update(page=page, title=page.title, data=model, json_url=json_url)
        if page.view is not None:
            values.update(page.view(model))
        return aiohttp_jinja2.render_template(f"pages/{page.name}.html", request, values)

    html.__name__ = page.name
    return html
