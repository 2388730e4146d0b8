"""Rate-limited warnings for refused input, so a flood of junk costs a few log lines a minute."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs at most ``per_minute`` warnings a minute; the rest are counted and summarised in
    one line when the next minute's first warning is logged."""

    def __init__(
        self,
        logger: logging.Logger,
        per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._per_minute = per_minute
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self.suppressed = 0

    def warning(self, message: str, *args: object) -> bool:
        """Log ``message`` unless this minute's quota is spent; return True if it was logged."""
        now = self._clock()
        if now - self._window_start >= 60:
            if self.suppressed:
                self._log.warning(
                    "%d more refusals in the last minute were not logged", self.suppressed
                )
            self._window_start, self._logged, self.suppressed = now, 0, 0
        if self._logged >= self._per_minute:
            self.suppressed += 1
            return False
        self._logged += 1
        self._log.warning(message, *args)
        return True
