"""The cloud service as an aiohttp application: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from fleetlink.cloud.api import health, signals, vehicles
from fleetlink.cloud.api.openapi import openapi_routes
from fleetlink.cloud.api.problems import problem_middleware
from fleetlink.cloud.app_keys import INGEST, POOL, SETTINGS
from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.registry import ensure_tenant
from fleetlink.cloud.settings import CloudSettings, redact_url

log = logging.getLogger(__name__)

RESOURCES = (vehicles.api, signals.api, health.api)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    log.info("starting with %s", settings.describe())
    pool = await asyncpg.create_pool(
        settings.database_dsn(), min_size=1, max_size=settings.db_pool_size
    )
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            if settings.mode == "demo":
                await ensure_tenant(conn, settings.api_tenant)
        app[POOL] = pool
        ingest = IngestService(settings, pool)
        app[INGEST] = ingest
        try:
            if settings.ingest_workers:
                await ingest.start()
            log.info(
                "cloud ready: database %s, %d ingest worker(s)",
                redact_url(settings.database_dsn()),
                len(ingest.workers),
            )
            yield
        finally:
            await ingest.stop()
    finally:
        await pool.close()


def create_app(settings: CloudSettings | None = None) -> web.Application:
    """Return the application; its database pool and ingest start with the app, not here.

    On start-up the migrations are applied and, in demo mode, the demo tenant is created;
    start-up fails with MigrationError, IngestConfigError, OSError or TimeoutError when the
    database or broker cannot be used.
    """
    app = web.Application(middlewares=[problem_middleware])
    app[SETTINGS] = settings or CloudSettings()
    app.cleanup_ctx.append(_resources)
    for resource in RESOURCES:
        app.add_routes(resource.routes)
    app.add_routes(openapi_routes(RESOURCES).routes)
    return app
