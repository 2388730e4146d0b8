"""Start-up that waits for what it needs: the database (then migrations) and the broker.

``fleetlink cloud serve`` answers HTTP at once; while the database or the broker cannot be
reached it says so in one log line per dependency, retries with a jittered backoff, and
``/readyz`` answers 503 naming what it waits for. Once both answer it is ready by itself.
Errors that retrying cannot fix (a failed migration, settings the broker cannot honour) still
stop the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from fleetlink.cloud.db.migrate import migrate
from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.settings import CloudSettings, redact_url
from fleetlink.shared.backoff import Backoff

log = logging.getLogger(__name__)


class Startup:
    """Runs the start-up steps in the background; ``waiting_for`` says what it waits for
    (None once ready), ``failed`` holds an error retrying cannot fix."""

    def __init__(
        self,
        settings: CloudSettings,
        pool: asyncpg.Pool,
        ingest: IngestService,
        on_migrated: Callable[[], None] = lambda: None,
    ):
        self._settings = settings
        self._pool = pool
        self._ingest = ingest
        self._on_migrated = on_migrated  # starts what needs the tables (dispatchers, monitors)
        self.waiting_for: str | None = "start-up"
        self.failed: BaseException | None = None
        # Set once start-up is done, failed, or waits for something that did not answer.
        self.settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.waiting_for is None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cloud start-up")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _retry(
        self,
        what: str,
        step: Callable[[], Awaitable[None]],
        transient: tuple[type[BaseException], ...],
    ) -> None:
        s = self._settings
        backoff = Backoff(
            s.mqtt_reconnect_min_s, max(s.mqtt_reconnect_min_s, s.mqtt_reconnect_max_s)
        )
        self.waiting_for = what
        while True:
            try:
                await step()
            except transient as exc:
                self.settled.set()
                if backoff.attempt == 0:
                    log.error(
                        "cannot reach %s (%s: %s); retrying until it answers",
                        what,
                        type(exc).__name__,
                        exc,
                    )
                await asyncio.sleep(backoff.next())
                continue
            if backoff.attempt:
                log.info("reached %s", what)
            return

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn:
            await migrate(conn)

    async def _start_ingest(self) -> None:
        try:
            await self._ingest.start()
        except TimeoutError as exc:  # the workers exist and keep reconnecting by themselves
            log.warning("%s; it keeps trying", exc)

    async def _run(self) -> None:
        s = self._settings
        try:
            await self._retry(
                f"the database at {redact_url(s.database_dsn())}",
                self._migrate,
                DATABASE_UNAVAILABLE,
            )
            self._on_migrated()
            if s.ingest_workers:
                broker = (
                    f"the NATS cluster at {', '.join(map(redact_url, s.nats_servers()))}"
                    if s.ingest_source == "nats"
                    else f"the MQTT broker at {redact_url(s.mqtt_url.get_secret_value())}"
                )
                await self._retry(
                    broker,
                    self._start_ingest,
                    (OSError,),
                )
        except Exception as exc:
            self.failed = exc
            self.waiting_for = f"nothing: start-up failed ({type(exc).__name__}: {exc})"
            log.critical("start-up failed: %s", exc, exc_info=exc)
            self.settled.set()
            return
        self.waiting_for = None
        self.settled.set()
        log.info(
            "cloud ready: database %s, %d ingest worker(s)",
            redact_url(s.database_dsn()),
            len(self._ingest.workers),
        )
