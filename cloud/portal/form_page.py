"""Answer a form's POST with its page rendered again: a notice, a secret shown once, or the
form's errors next to their fields (decision D75)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from fleetlink.cloud.portal.page import Page, twin_of
from fleetlink.cloud.portal.render import context


async def page_after_form(
    request: web.Request, conn: asyncpg.Connection, page: Page, status: int = 200, **extra: Any
) -> web.Response:
    """Return ``page`` rendered with its model loaded on ``conn`` and the template values
    ``extra`` (``notice``, ``errors`` as {field: message}, ``form`` as sent, ``created``…,
    ``json_url`` for a page whose path has variables) besides the page's view values; those
    not given are empty."""
    values = context(request, page.name)
    data = await page.load(request, conn)
    values.update(
        page=page,
        title=page.title,
        data=data,
        json_url=twin_of(page.path),
        created=None,
        notice=None,
        errors={},
        form={},
    )
    if page.view is not None:
        values.update(page.view(data))
    values.update(extra)
    return aiohttp_jinja2.render_template(f"pages/{page.name}.html", request, values, status=status)


async def posted_fields(request: web.Request) -> dict[str, str]:
    """Return the form's text fields (the CSRF token included)."""
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
