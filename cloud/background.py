"""Periodic jobs of the cloud process (trip recomputation, scheduled reports, retention): one
asyncio task each, started and stopped with the application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[int]]


@dataclass
class PeriodicJobs:
    """Runs each job every ``every_s``, at once again while it reports work done (> 0);
    counts failures per job and logs each once per change of state."""

    failures: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, name: str, every_s: float, job: Job, *, first_after_s: float = 0) -> None:
        """Run ``job`` every ``every_s`` (never if 0), the first time after ``first_after_s``."""
        if every_s > 0:
            task = asyncio.create_task(self._loop(name, every_s, job, first_after_s), name=name)
            self._tasks.append(task)

    async def _loop(self, name: str, every_s: float, job: Job, first_after_s: float) -> None:
        await asyncio.sleep(first_after_s)
        failing = False
        while True:
            try:
                done = await job()
                self.runs[name] += 1
                if failing:
                    log.info("%s works again", name)
                    failing = False
            except Exception:  # a job must never end its loop; the failure is counted
                self.failures[name] += 1
                if not failing:
                    log.exception("%s failed; retrying every %.1f s", name, every_s)
                    failing = True
                done = 0
            if not done:
                await asyncio.sleep(every_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
