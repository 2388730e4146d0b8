"""The cloud service as an aiohttp application: ``create_app(settings)``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import partial

import asyncpg
from aiohttp import web

from fleetlink.cloud.api import (
    accounts,
    audit_log,
    auth,
    devices,
    diagnostics,
    drivers,
    fleets,
    health,
    imports,
    searches,
    signals,
    vehicles,
)
from fleetlink.cloud.api.openapi import openapi_routes
from fleetlink.cloud.api.problems import problem_middleware
from fleetlink.cloud.app_keys import (
    API_POOL,
    FIELD_CIPHER,
    INGEST,
    LIMITER,
    LOGIN_LIMITER,
    POOL,
    PRINCIPALS,
    SETTINGS,
)
from fleetlink.cloud.auth.principal_cache import PrincipalCache
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.records.field_crypto import FieldCipher, generate_key_ring_entry
from fleetlink.cloud.settings import CloudSettings, redact_url

log = logging.getLogger(__name__)

_MAX_REQUEST_LINE_BYTES = 64 * 1024

RESOURCES = (
    auth.api,
    accounts.api,
    fleets.api,
    vehicles.api,
    devices.api,
    drivers.api,
    imports.api,
    signals.api,
    searches.api,
    diagnostics.api,
    audit_log.api,
    health.api,
)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    log.info("starting with %s", settings.describe())
    pool = await asyncpg.create_pool(
        settings.database_dsn(), min_size=1, max_size=settings.db_pool_size
    )
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        api_dsn, api_server_settings = settings.api_dsn()
        api_pool = await asyncpg.create_pool(
            api_dsn,
            min_size=1,
            max_size=settings.api_pool_size,
            server_settings=api_server_settings,
            init=_json_codecs,
        )
        app[POOL] = pool
        app[API_POOL] = api_pool
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
            await api_pool.close()
    finally:
        await pool.close()


async def _json_codecs(conn: asyncpg.Connection) -> None:
    """Read and write json/jsonb columns as Python values on the API's connections."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=partial(json.dumps, default=str), decoder=json.loads, schema="pg_catalog"
        )


def _field_cipher(settings: CloudSettings) -> FieldCipher:
    """Return the cipher of drivers' personal fields; demo mode may run on a key of its own."""
    if settings.field_keys is not None:
        return FieldCipher.from_env_value(settings.field_keys.get_secret_value())
    log.warning(
        "FLEETLINK_FIELD_KEYS is not set: drivers' personal fields are encrypted with a key "
        "that lives only as long as this process (demo mode)"
    )
    return FieldCipher.from_env_value(generate_key_ring_entry("ephemeral"))


def create_app(settings: CloudSettings | None = None) -> web.Application:
    """Return the application; its database pool and ingest start with the app, not here.

    On start-up the migrations are applied; start-up fails with MigrationError,
    IngestConfigError, OSError or TimeoutError when the database or broker cannot be used.
    """
    settings = settings or CloudSettings()
    app = web.Application(
        middlewares=[problem_middleware],
        client_max_size=settings.api_max_body_bytes,
        # aiohttp refuses request lines over 8 KiB itself, in text/plain; a URL whose
        # parameters break the documented limits (a 500-character cursor is 6 KB encoded)
        # must reach the API and get its problem+json answer.
        handler_args={"max_line_size": _MAX_REQUEST_LINE_BYTES},
    )
    app[SETTINGS] = settings
    app[LIMITER] = RateLimiter(settings.api_rate_per_s, settings.api_rate_burst)
    app[LOGIN_LIMITER] = RateLimiter(settings.login_rate_per_min / 60, settings.login_rate_per_min)
    app[FIELD_CIPHER] = _field_cipher(settings)
    app[PRINCIPALS] = PrincipalCache(ttl_s=settings.token_cache_s)
    app.cleanup_ctx.append(_resources)
    for resource in RESOURCES:
        app.add_routes(resource.routes)
    app.add_routes(openapi_routes(RESOURCES).routes)
    return app
