"""Answer a form's POST with its page rendered again: a notice, a secret shown once, or the
form's errors next to their fields (decision D75)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from fleetlink.cloud.api.access import tenant_transaction
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


class FormRefused(Exception):
    """Raised by a form's step for fields the model or the API refused: the status (422, or
    409 for a conflict) and the messages by field (``"form"`` for the form as a whole)."""

    def __init__(self, status: int, errors: dict[str, str]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors


# A form's work in the caller's transaction; returns the page's values (notice, created…).
FormStep = Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]]


async def answer_form(
    request: web.Request,
    page: Page,
    form: dict[str, str],
    step: FormStep,
    status: int = 200,
    **extra: Any,
) -> web.Response:
    """Run ``step`` in one tenant transaction and render ``page`` with ``status`` and the
    values it returns; if it raises FormRefused, nothing is committed and the page shows the
    errors next to their fields with the form as sent. ``extra`` (e.g. ``json_url``) goes to
    either rendering; a ProblemError from ``step`` passes through to the caller."""
    try:
        async with tenant_transaction(request) as conn:
            shown = await step(conn)
    except FormRefused as refused:
        async with tenant_transaction(request) as conn:
            return await page_after_form(
                request, conn, page, refused.status, errors=refused.errors, form=form, **extra
            )
    async with tenant_transaction(request) as conn:
        return await page_after_form(request, conn, page, status, **extra, **shown)
