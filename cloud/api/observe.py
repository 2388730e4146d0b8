"""Request ids and latency metrics for every API request.

Each request gets an id (the caller's ``X-Request-Id`` when it is a short token, else a new
one), returned in the response's ``X-Request-Id`` and added to every log record written while
the request is handled (``request_id`` in the JSON logs). Its latency is observed in
``fleetlink_http_request_seconds`` by route template, never by raw path, so ids in paths do
not multiply the series.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from fleetlink.cloud import metrics
from fleetlink.shared.logs import log_context

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUEST_ID = "X-Request-Id"


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Return the handler's response with its request id; observe its latency."""
    given = request.headers.get(REQUEST_ID, "")
    request_id = given if _TOKEN.match(given) else uuid.uuid4().hex
    began = time.perf_counter()
    status = 500
    try:
        with log_context(request_id=request_id):
            response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[REQUEST_ID] = request_id
        raise
    finally:
        metrics.HTTP_LATENCY.labels(_route(request), request.method, f"{status // 100}xx").observe(
            time.perf_counter() - began
        )
