"""An ingest-only process: the MQTT ingest with ``/healthz``, ``/readyz`` and ``/metrics``.

``fleetlink cloud ingest`` runs these apart from the API (``fleetlink cloud serve`` with
``FLEETLINK_INGEST_WORKERS=0``), so ingest scales by processes on one shared subscription
while the API scales by replicas. Start-up is the API's (wait for the database, migrate, wait
for the broker); there is no live feed here: SSE clients of an API process see the batches
that process's own ingest committed (docs/observability.md, docs/architecture.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from fleetlink.cloud.api import health
from fleetlink.cloud.app_keys import INGEST, POOL, SETTINGS, STARTUP
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.settings import CloudSettings
from fleetlink.cloud.startup import Startup

log = logging.getLogger(__name__)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await asyncpg.create_pool(
        settings.database_dsn(), min_size=0, max_size=settings.db_pool_size
    )
    app[POOL] = pool
    ingest = IngestService(settings, pool)
    app[INGEST] = ingest
    startup = Startup(settings, pool, ingest)
    app[STARTUP] = startup
    startup.start()
    try:
        await startup.settled.wait()
        yield
    finally:
        await startup.stop()
        await ingest.stop()
        await pool.close()


def create_ingest_app(settings: CloudSettings) -> web.Application:
    """Return an application that runs only the ingest and its health and metrics routes."""
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.add_routes(health.routes)
    return app
