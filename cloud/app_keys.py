"""Typed keys for the resources an application owns (opened and closed in ``cloud.app``)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.settings import CloudSettings

SETTINGS = web.AppKey("settings", CloudSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
INGEST = web.AppKey("ingest", IngestService)
