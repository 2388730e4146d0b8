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
    costs,
    devices,
    diagnostics,
    drivers,
    fleets,
    gaps,
    geofences,
    health,
    imports,
    inbox,
    live,
    maintenance,
    positions,
    provisioning,
    reports,
    scores,
    searches,
    signals,
    trips,
    vehicle_events,
    vehicles,
    webhooks,
)
from fleetlink.cloud.api.observe import observe_middleware
from fleetlink.cloud.api.openapi import openapi_routes
from fleetlink.cloud.api.problems import problem_middleware
from fleetlink.cloud.app_keys import (
    API_POOL,
    EMAIL_DISPATCHER,
    EMAIL_SENDER,
    FIELD_CIPHER,
    GEOFENCE_MONITOR,
    INGEST,
    LIMITER,
    LIVE_HUB,
    LIVE_LISTENER,
    LIVE_OUT,
    LOGIN_LIMITER,
    POOL,
    PRINCIPALS,
    SETTINGS,
    STARTUP,
    WEBHOOK_DISPATCHER,
)
from fleetlink.cloud.auth.principal_cache import PrincipalCache
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.background import PeriodicJobs
from fleetlink.cloud.geofences.monitor import GeofenceMonitor
from fleetlink.cloud.ingest.store import ChunkResult
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.live.feed import LiveFeed
from fleetlink.cloud.live.hub import LiveHub
from fleetlink.cloud.live.relay import LiveListener, PostgresRelay
from fleetlink.cloud.maintenance.notify import due_scanner
from fleetlink.cloud.notify.email import EmailDispatcher, EmailSender
from fleetlink.cloud.notify.webhooks import WebhookDispatcher
from fleetlink.cloud.portal.setup import setup_portal
from fleetlink.cloud.records.field_crypto import FieldCipher, generate_key_ring_entry
from fleetlink.cloud.reports.schedule import run_due_reports
from fleetlink.cloud.settings import CloudSettings
from fleetlink.cloud.startup import Startup
from fleetlink.cloud.storage.compaction import compact_closed_days
from fleetlink.cloud.storage.retention import apply_retention
from fleetlink.cloud.trips.recompute import recompute_marked

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 32 * 1024

RESOURCES = (
    auth.api,
    accounts.api,
    fleets.api,
    vehicles.api,
    gaps.api,
    devices.api,
    provisioning.api,
    drivers.api,
    imports.api,
    signals.api,
    trips.api,
    scores.api,
    reports.api,
    searches.api,
    live.api,
    inbox.api,
    webhooks.api,
    geofences.api,
    positions.api,
    diagnostics.api,
    audit_log.api,
    maintenance.api,
    costs.api,
    vehicle_events.api,
    health.api,
)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    log.info("starting with %s", settings.describe())
    # Pools with no connection yet: the service starts whether or not the database answers.
    pool = await asyncpg.create_pool(
        settings.database_dsn(), min_size=0, max_size=settings.db_pool_size
    )
    api_dsn, api_server_settings = settings.api_dsn()
    api_pool = await asyncpg.create_pool(
        api_dsn,
        min_size=0,
        max_size=settings.api_pool_size,
        server_settings=api_server_settings,
        init=_json_codecs,
    )
    app[POOL] = pool
    app[API_POOL] = api_pool
    notifiers = _notifiers(app, pool)
    monitor = GeofenceMonitor(pool, app[LIVE_OUT], settings.geofence_queue_size)
    app[GEOFENCE_MONITOR] = monitor
    feed = LiveFeed(app[LIVE_OUT], monitor)
    relay = app[LIVE_OUT]
    listener = None
    if isinstance(relay, PostgresRelay):
        relay.start()
        listener = app[LIVE_LISTENER] = LiveListener(settings.database_dsn(), app[LIVE_HUB])
        listener.start()

    def on_commit(result: ChunkResult) -> None:
        feed.on_commit(result)
        if result.counters["inbox_items"]:
            for notifier in notifiers:
                notifier.wake()

    jobs = PeriodicJobs()

    def on_migrated() -> None:
        if not settings.background_jobs:
            return
        monitor.start()
        for notifier in notifiers:
            notifier.start()
        _start_jobs(jobs, settings, pool)

    ingest = IngestService(settings, pool, on_commit)
    app[INGEST] = ingest
    startup = Startup(settings, pool, ingest, on_migrated)
    app[STARTUP] = startup
    startup.start()
    try:
        # Ready before serving when everything answers; serving (503) while it waits if not.
        await startup.settled.wait()
        yield
    finally:
        app[LIVE_HUB].close_all()
        await startup.stop()
        await jobs.stop()
        await ingest.stop()
        await monitor.stop()
        for notifier in notifiers:
            await notifier.stop()
        if listener is not None:
            await listener.stop()
        if isinstance(relay, PostgresRelay):
            await relay.stop()
        await api_pool.close()
        await pool.close()


def _start_jobs(jobs: PeriodicJobs, settings: CloudSettings, pool: asyncpg.Pool) -> None:
    """Start the recompute worker, the report scheduler, retention and compaction (each
    unless 0 s)."""

    async def recompute() -> int:
        return await recompute_marked(pool, settle_s=settings.trips_settle_s)

    async def reports() -> int:
        return await run_due_reports(pool, settings)

    async def retention() -> int:
        await apply_retention(pool, settings.ingest_accept_past_days)
        return 0

    async def compaction() -> int:
        await compact_closed_days(pool, settings.compact_after_days)
        return 0

    jobs.start("trip recompute", settings.trips_recompute_every_s, recompute)
    jobs.start("scheduled reports", settings.reports_every_s, reports)
    # Retention first runs one period after start, never in the middle of a start-up.
    jobs.start(
        "retention", settings.retention_every_s, retention, first_after_s=settings.retention_every_s
    )
    jobs.start(
        "compaction", settings.compact_every_s, compaction, first_after_s=settings.compact_every_s
    )


async def _json_codecs(conn: asyncpg.Connection) -> None:
    """Read and write json/jsonb columns as Python values on the API's connections."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=partial(json.dumps, default=str), decoder=json.loads, schema="pg_catalog"
        )


def _notifiers(
    app: web.Application, pool: asyncpg.Pool
) -> list[WebhookDispatcher | EmailDispatcher]:
    """Return the webhook dispatcher, and the email dispatcher when SMTP is configured."""
    settings = app[SETTINGS]
    webhooks_out = WebhookDispatcher(
        pool,
        app[FIELD_CIPHER],
        allow_private=settings.webhooks_may_call_private,
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_max_s=settings.webhook_backoff_max_s,
        poll_s=settings.notify_poll_s,
    )
    app[WEBHOOK_DISPATCHER] = webhooks_out
    notifiers: list[WebhookDispatcher | EmailDispatcher] = [webhooks_out]
    if settings.smtp_url is not None:
        sender = EmailSender.from_url(settings.smtp_url.get_secret_value(), settings.smtp_from)
        app[EMAIL_SENDER] = sender
        email_out = EmailDispatcher(
            pool,
            sender,
            settings.notify_poll_s,
            settings.webhook_max_attempts,
            settings.webhook_backoff_base_s,
            settings.webhook_backoff_max_s,
        )
        app[EMAIL_DISPATCHER] = email_out
        notifiers.append(email_out)
    return notifiers


async def _end_live_streams(app: web.Application) -> None:
    app[LIVE_HUB].close_all()


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

    Start-up (``fleetlink.cloud.startup``) runs in the background: it waits for the database,
    applies the migrations, then starts the ingest once the broker answers; ``/readyz`` says
    what it waits for.
    """
    settings = settings or CloudSettings()
    # A query string within the documented limits (a 500-character cursor and a 200-character
    # search, percent-encoded at up to 12 bytes a character) exceeds aiohttp's default 8 KiB
    # request line, which it refuses in plain text before any route can answer.
    app = web.Application(
        middlewares=[observe_middleware, problem_middleware],
        client_max_size=settings.api_max_body_bytes,
        # Query strings within every parameter's documented maxLength can pass aiohttp's 8 KiB
        # request-line default once percent-encoded; a longer line still gets a plain 400 from
        # the HTTP parser, a documented one reaches the handlers and gets a problem document.
        handler_args={"max_line_size": MAX_REQUEST_LINE},
    )
    app[SETTINGS] = settings
    app[LIMITER] = RateLimiter(settings.api_rate_per_s, settings.api_rate_burst)
    app[LOGIN_LIMITER] = RateLimiter(settings.login_rate_per_min / 60, settings.login_rate_per_min)
    app[FIELD_CIPHER] = _field_cipher(settings)
    app[PRINCIPALS] = PrincipalCache(ttl_s=settings.token_cache_s)
    app[LIVE_HUB] = LiveHub(
        settings.live_queue_size, settings.live_replay_size, settings.live_idle_grace_s
    )
    app[LIVE_OUT] = (
        PostgresRelay(settings.database_dsn()) if settings.relays_live() else app[LIVE_HUB]
    )
    app.cleanup_ctx.append(_resources)
    # Streams end before the server waits for open requests to finish.
    app.on_shutdown.append(_end_live_streams)
    app.cleanup_ctx.append(due_scanner)
    for resource in RESOURCES:
        app.add_routes(resource.routes)
    app.add_routes(openapi_routes(RESOURCES).routes)
    setup_portal(app)
    return app
