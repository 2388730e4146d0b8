"""RFC 9457 problem details: every error response is ``application/problem+json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
RETRY_AFTER_S = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProblemError(Exception):
    """Raise from a handler to answer with a problem body of this status."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(
    request: web.Request,
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """Return a problem+json response for ``status`` about ``request``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.path_qs,
    }
    if errors:
        body["errors"] = errors
    return web.Response(
        status=status,
        text=json.dumps(body, default=str),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn ProblemError, aiohttp's HTTP errors and unexpected exceptions into problems.

    A path or query with a NUL character is refused before any handler sees it.
    """
    try:
        if "\x00" in request.path or any("\x00" in k + v for k, v in request.query.items()):
            raise ProblemError(400, "the path or query contains a NUL character")
        return await handler(request)
    except ProblemError as exc:
        return problem_response(
            request, exc.status, exc.detail, errors=exc.errors, headers=exc.headers
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else ""
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            detail = f"{request.method} is not allowed here; use {allowed}"
        elif isinstance(exc, web.HTTPNotFound) and not detail:
            detail = f"no resource at {request.path}"
        return problem_response(request, exc.status, detail or exc.reason, headers=headers)
    except DATABASE_UNAVAILABLE as exc:
        log.debug("database unavailable for %s %s: %r", request.method, request.path, exc)
        return problem_response(
            request,
            503,
            "the database cannot be reached; retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response(request, 500, "the server failed to answer; see its log")
