"""Fixtures of the portal's browser tests: the cloud service on a real port, Chromium, users.

The service runs in a thread of its own (its own event loop) against the session's
PostgreSQL and mosquitto; tests drive Debian's Chromium through Playwright's sync API and put
data in through ``PortalServer.run`` (a coroutine run on the service's loop).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, sync_playwright

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import POOL
from fleetlink.cloud.auth.accounts import add_user
from tests.cloud.conftest import Fleet, ingest_settings, make_fleet
from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct horse battery staple 42"

T = TypeVar("T")


class PortalServer:
    """The cloud service serving on 127.0.0.1:``port`` from a background thread."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.app = app
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, handle_signals=False)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.call(self._start)

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def call(self, make: Callable[[], Awaitable[T]], timeout_s: float = 30) -> T:
        """Run the coroutine ``make()`` on the service's loop; return its result."""

        async def wrapped() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout_s)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app[POOL]

    def stop(self) -> None:
        self.call(self._runner.cleanup)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="package")
def portal_server(migrated_db: str, mqtt_broker: Any) -> Iterator[PortalServer]:
    """The service with its ingest, serving the portal on a free port."""
    settings = ingest_settings(
        migrated_db,
        mqtt_broker.url,
        login_rate_per_min=10_000,
        api_rate_per_s=10_000,
        api_rate_burst=10_000,
        cookie_secure="never",
    )
    server = PortalServer(create_app(settings), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(portal_server: PortalServer) -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (no downloaded browser).

    Per module: Playwright's sync API keeps an event loop running in this thread while it is
    open, which other tests' ``asyncio.run`` would refuse; the service starts before it.
    """
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Member:
    tenant: str
    email: str
    role: str
    user_id: uuid.UUID
    password: str = PASSWORD


@dataclass
class PortalFleet:
    """A tenant with vehicles and one member per role asked for."""

    fleet: Fleet
    members: dict[str, Member]

    @property
    def tenant(self) -> str:
        return self.fleet.tenant


def make_portal_fleet(
    server: PortalServer, roles: tuple[str, ...] = ("fleet_manager", "viewer"), devices: int = 2
) -> PortalFleet:
    """Create a tenant with ``devices`` vehicles and one member (password PASSWORD) per role."""

    async def build() -> PortalFleet:
        fleet = await make_fleet(server.pool, devices)
        members = {}
        async with server.pool.acquire() as conn:
            for role in roles:
                email = f"{role}-{uuid.uuid4().hex[:6]}@{fleet.tenant}.example"
                user_id = await add_user(conn, fleet.tenant, email, role, PASSWORD)
                members[role] = Member(fleet.tenant, email, role, user_id)
        return PortalFleet(fleet, members)

    return server.call(build)


@pytest.fixture(scope="module")
def portal_fleet(portal_server: PortalServer) -> PortalFleet:
    return make_portal_fleet(portal_server)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def log_in(page: Page, server: PortalServer, member: Member, next_path: str = "/portal/") -> None:
    """Log ``member`` in through the login form; wait for the page after it."""
    page.goto(f"{server.base_url}/portal/login?next={next_path}")
    page.fill("#tenant", member.tenant)
    page.fill("#email", member.email)
    page.fill("#password", member.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.base_url}{next_path}")
