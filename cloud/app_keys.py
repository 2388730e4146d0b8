"""Typed keys for the resources an application owns (opened and closed in ``cloud.app``)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from fleetlink.cloud.auth.principal_cache import PrincipalCache
from fleetlink.cloud.auth.rate_limit import RateLimiter
from fleetlink.cloud.geofences.monitor import GeofenceMonitor
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.live.hub import LiveHub
from fleetlink.cloud.live.relay import LiveListener, LivePublisher
from fleetlink.cloud.notify.email import EmailDispatcher, EmailSender
from fleetlink.cloud.notify.webhooks import WebhookDispatcher
from fleetlink.cloud.records.field_crypto import FieldCipher
from fleetlink.cloud.settings import CloudSettings
from fleetlink.cloud.startup import Startup

SETTINGS = web.AppKey("settings", CloudSettings)
# The owner's pool: migrations, ingest, authentication look-ups.
POOL = web.AppKey("pool", asyncpg.Pool)
# The API's pool: connections run as the role fleetlink_api, under row-level security.
API_POOL = web.AppKey("api_pool", asyncpg.Pool)
LIMITER = web.AppKey("limiter", RateLimiter)
LOGIN_LIMITER = web.AppKey("login_limiter", RateLimiter)
FIELD_CIPHER = web.AppKey("field_cipher", FieldCipher)
PRINCIPALS = web.AppKey("principals", PrincipalCache)
INGEST = web.AppKey("ingest", IngestService)
STARTUP = web.AppKey("startup", Startup)
# This process's clients subscribe here.
LIVE_HUB = web.AppKey("live_hub", LiveHub)
# Where live messages are published: the hub itself, or the relay to every process.
LIVE_OUT = web.AppKey("live_out", LivePublisher)
# Present with live_relay = "postgres".
LIVE_LISTENER = web.AppKey("live_listener", LiveListener)
GEOFENCE_MONITOR = web.AppKey("geofence_monitor", GeofenceMonitor)
WEBHOOK_DISPATCHER = web.AppKey("webhook_dispatcher", WebhookDispatcher)
# Present only when FLEETLINK_SMTP_URL is set.
EMAIL_SENDER = web.AppKey("email_sender", EmailSender)
EMAIL_DISPATCHER = web.AppKey("email_dispatcher", EmailDispatcher)
