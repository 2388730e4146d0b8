"""An ingest-only process: the MQTT ingest with ``/healthz``, ``/readyz`` and ``/metrics``.

``fleetlink cloud ingest`` runs these apart from the API (``fleetlink cloud serve`` with
``FLEETLINK_INGEST_WORKERS=0``), so ingest scales by processes on one shared subscription
while the API scales by replicas. Start-up is the API's (wait for the database, migrate, wait
for the broker). What it commits reaches the API processes' live clients through PostgreSQL
NOTIFY (``fleetlink.cloud.live.relay``), and the geofence monitor runs here, beside the
positions it reads (its state is in the database, so any number of processes share it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from fleetlink.cloud.api import health
from fleetlink.cloud.app_keys import INGEST, POOL, SETTINGS, STARTUP
from fleetlink.cloud.geofences.monitor import GeofenceMonitor
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.live.feed import LiveFeed
from fleetlink.cloud.live.relay import PostgresRelay
from fleetlink.cloud.settings import CloudSettings
from fleetlink.cloud.startup import Startup

log = logging.getLogger(__name__)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await asyncpg.create_pool(
        settings.database_dsn(), min_size=0, max_size=settings.db_pool_size
    )
    app[POOL] = pool
    relay = PostgresRelay(settings.database_dsn())
    monitor = GeofenceMonitor(pool, relay, settings.geofence_queue_size)
    ingest = IngestService(settings, pool, LiveFeed(relay, monitor).on_commit)
    app[INGEST] = ingest
    startup = Startup(settings, pool, ingest, on_migrated=monitor.start)
    app[STARTUP] = startup
    relay.start()
    startup.start()
    try:
        await startup.settled.wait()
        yield
    finally:
        await startup.stop()
        await ingest.stop()
        await monitor.stop()
        await relay.stop()
        await pool.close()


def create_ingest_app(settings: CloudSettings) -> web.Application:
    """Return an application that runs only the ingest and its health and metrics routes."""
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.add_routes(health.routes)
    return app
