"""``/healthz`` (the process answers), ``/readyz`` (database and ingest are usable) and
``/metrics`` (Prometheus text format, docs/observability.md)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from fleetlink.cloud import metrics
from fleetlink.cloud.api.models import Health
from fleetlink.cloud.api.problems import RETRY_AFTER_S
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import INGEST, POOL, STARTUP
from fleetlink.shared.version import VERSION

api = ResourceRoutes("health")
routes = api.routes


@api.get("/healthz", summary="Liveness: the process answers", response=Health, public=True)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response(text=Health(status="ok", version=VERSION).model_dump_json())


@api.get(
    "/metrics",
    summary="Prometheus metrics of this process: ingest rate, lag, ack latency, dead letters, "
    "refusals, API latency by route",
    response=None,
    response_media_type="text/plain",
    public=True,
)
async def metrics_text(request: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


@api.get(
    "/readyz",
    summary="Readiness: the database answers and every ingest worker is connected, "
    "its writer alive and able to commit (lag and last commit age are reported)",
    response=Health,
    public=True,
    errors=(503,),
)
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    info: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[POOL].fetchval("SELECT 1"), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    startup = request.app.get(STARTUP)
    if startup is not None and not startup.ready:
        checks["startup"] = f"waiting for {startup.waiting_for}"
    ingest = request.app.get(INGEST)
    if ingest is None or not ingest.workers:
        checks["ingest"] = "disabled"
    else:
        problems = []
        for worker in ingest.health():
            if not worker.connected:
                problems.append(f"{worker.client_id} not connected to the broker")
            if not worker.writer_alive:
                problems.append(f"{worker.client_id} writer restarting")
            if not worker.database_ok:
                problems.append(f"{worker.client_id} cannot write to the database")
        checks["ingest"] = "ok" if not problems else "; ".join(problems)
        workers = ingest.health()
        alive = sum(w.writer_alive for w in workers)
        ages = [w.last_commit_age_s for w in workers if w.last_commit_age_s is not None]
        info["ingest_writers_alive"] = f"{alive}/{len(workers)}"
        info["ingest_writer_restarts"] = str(sum(w.restarts for w in workers))
        info["ingest_in_hand"] = str(sum(w.in_hand for w in workers))
        info["ingest_lag_s"] = str(max(w.lag_s for w in workers))
        info["ingest_last_commit_age_s"] = str(min(ages)) if ages else "never"
        info["ingest_window"] = workers[0].window or "not connected yet"
        info["ingest_peak_held"] = str(max(w.peak_held for w in workers))
    ready = all(v in ("ok", "disabled") for v in checks.values())
    checks.update(info)
    body = Health(status="ok" if ready else "unavailable", version=VERSION, checks=checks)
    headers = None if ready else {"Retry-After": str(RETRY_AFTER_S)}
    return web.json_response(
        text=body.model_dump_json(), status=200 if ready else 503, headers=headers
    )
