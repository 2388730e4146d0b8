"""``/healthz`` (the process answers) and ``/readyz`` (database and ingest are usable)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from fleetlink.cloud.api.models import Health
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import INGEST, POOL
from fleetlink.shared.version import VERSION

api = ResourceRoutes("health")
routes = api.routes


@api.get("/healthz", summary="Liveness: the process answers", response=Health, public=True)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response(text=Health(status="ok", version=VERSION).model_dump_json())


@api.get(
    "/readyz",
    summary="Readiness: the database answers and every ingest worker is connected",
    response=Health,
    public=True,
    errors=(503,),
)
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[POOL].fetchval("SELECT 1"), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    ingest = request.app.get(INGEST)
    if ingest is None or not ingest.workers:
        checks["ingest"] = "disabled"
    else:
        checks["ingest"] = "ok" if ingest.connected else "not connected to the broker"
    ready = all(v in ("ok", "disabled") for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", version=VERSION, checks=checks)
    return web.json_response(text=body.model_dump_json(), status=200 if ready else 503)
