"""The recent values of every signal, by sample time: what the rules read and what an alert
carries as its window."""

from __future__ import annotations

import math
from collections import deque

# A value older than this (by sample time) no longer counts as the signal's current value.
FRESH_MS = 5_000
_WINDOW_POINTS = 20


class SignalHistory:
    """Samples of the last ``keep_s`` seconds per signal id (longer for the signals given in
    ``keep_longer_s``); time is the newest sample's."""

    def __init__(self, keep_s: float = 15.0, keep_longer_s: dict[int, float] | None = None):
        self.keep_ms = int(keep_s * 1000)
        self._keep_ms = {
            k: max(self.keep_ms, int(v * 1000)) for k, v in (keep_longer_s or {}).items()
        }
        self.now_ms = 0
        self._series: dict[int, deque[tuple[int, float]]] = {}

    def add(self, signal_id: int, time_ms: int, value: float) -> bool:
        """Keep one sample; return False (keeping nothing) for a NaN or infinite value."""
        if not math.isfinite(value):
            return False
        series = self._series.get(signal_id)
        if series is None:
            series = self._series[signal_id] = deque()
        series.append((time_ms, value))
        if time_ms > self.now_ms:
            self.now_ms = time_ms
        horizon = self.now_ms - self._keep_ms.get(signal_id, self.keep_ms)
        while series[0][0] < horizon:
            series.popleft()
        return True

    def latest(self, signal_id: int, max_age_ms: int = FRESH_MS) -> float | None:
        """Return the signal's newest value, None when it has none within ``max_age_ms``."""
        series = self._series.get(signal_id)
        if not series or self.now_ms - series[-1][0] > max_age_ms:
            return None
        return series[-1][1]

    def since(self, signal_id: int, start_ms: int) -> list[tuple[int, float]]:
        """Return the signal's samples at or after ``start_ms``, oldest first."""
        points = []
        for point in reversed(self._series.get(signal_id, ())):
            if point[0] < start_ms:
                break
            points.append(point)
        points.reverse()
        return points

    def newest_until(self, signal_id: int, time_ms: int) -> tuple[int, float] | None:
        """Return the newest sample taken at or before ``time_ms`` (None without one)."""
        for point in reversed(self._series.get(signal_id, ())):
            if point[0] <= time_ms:
                return point
        return None

    def window_text(self, signal_id: int, end_ms: int, span_ms: int) -> str | None:
        """Return the samples of the ``span_ms`` before ``end_ms`` as ``"-2.4:51 -1.2:47 0:40"``
        (seconds before ``end_ms``: value), at most 20 evenly picked points; None without any."""
        points = [p for p in self.since(signal_id, end_ms - span_ms) if p[0] <= end_ms]
        if not points:
            return None
        if len(points) > _WINDOW_POINTS:
            step = (len(points) - 1) / (_WINDOW_POINTS - 1)
            points = [points[round(i * step)] for i in range(_WINDOW_POINTS)]
        return " ".join(f"{(t - end_ms) / 1000:g}:{v:.4g}" for t, v in points)[:256]
