"""Supervision of the ingest's long-lived tasks: a crash is logged once, counted, and the
task restarts after a backoff, so no single bug or fault silences the ingest for good."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# A task that ran this long before failing starts again from the shortest backoff.
_HEALTHY_AFTER_S = 30.0


class SupervisedTask:
    """Runs ``run()`` until stopped; restarts it with exponential backoff when it raises
    (or returns, which a long-lived task must not do).

    ``counters["task_restarts"]`` counts the restarts; ``alive`` is False while the task
    waits to restart; ``last_error`` says what killed it last.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        counters: Counter[str],
        min_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.name = name
        self._run = run
        self._counters = counters
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self.alive = False
        self.restarts = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.alive = False

    async def _supervise(self) -> None:
        delay = self._min_backoff_s
        while True:
            started = time.monotonic()
            self.alive = True
            try:
                await self._run()
                error: BaseException = RuntimeError(f"{self.name} returned")
            except asyncio.CancelledError:
                self.alive = False
                raise
            except Exception as exc:
                error = exc
            self.alive = False
            self.restarts += 1
            self._counters["task_restarts"] += 1
            self.last_error = f"{type(error).__name__}: {error}"
            if time.monotonic() - started > _HEALTHY_AFTER_S:
                delay = self._min_backoff_s
            log.error(
                "%s failed (%s); restart %d in %.1f s",
                self.name,
                self.last_error,
                self.restarts,
                delay,
                exc_info=error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff_s)
