"""From samples to rows, from rows to windows.

The sample stream is irregular (CAN signals on change, OBD PIDs at their own rates), so the
latest value of each feature is held and a row is taken every ``row_interval_ms``. A window
of rows becomes one vector: per feature its mean, and the logarithms (``log1p``) of its
standard deviation and of its mean absolute step between rows (``card.WINDOW_STATS``). The
logarithm keeps a few lively windows (a hard start, a kickdown) from dwarfing the quiet
ones a stuck sensor or a rough engine differ from.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def window_vector(rows: npt.NDArray[np.floating]) -> FloatArray:
    """Return the window vector of ``rows`` (shape: rows x features): per feature, in feature
    order, its mean, log1p of its standard deviation, log1p of its mean absolute step.

    Raises:
        ValueError: fewer than two rows, or not a 2-D array.
    """
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError(f"a window needs at least 2 rows of features, got shape {rows.shape}")
    data = rows.astype(np.float64, copy=False)
    steps = np.abs(np.diff(data, axis=0)).mean(axis=0)
    stats = np.stack([data.mean(axis=0), np.log1p(data.std(axis=0)), np.log1p(steps)], axis=1)
    return stats.reshape(-1).astype(np.float32)


def window_vectors(rows: npt.NDArray[np.floating], window: int, hop: int) -> FloatArray:
    """Return the vectors of every ``window``-row window of ``rows`` taken each ``hop`` rows
    (shape: windows x features*3; empty when ``rows`` is shorter than one window)."""
    starts = range(0, rows.shape[0] - window + 1, hop)
    if not starts:
        return np.zeros((0, rows.shape[1] * 3), dtype=np.float32)
    return np.stack([window_vector(rows[s : s + window]) for s in starts])


class RowClock:
    """Holds the latest value of each feature and yields a row every ``interval_ms``.

    A feature never seen, or not seen for ``stale_after_ms``, is NaN in the row. When no
    feature arrived for ``quiet_after_ms`` (the vehicle is off, the link is down), ``take``
    returns None and the caller starts its window again.
    """

    def __init__(
        self,
        signal_ids: list[int],
        interval_ms: int,
        stale_after_ms: int,
        quiet_after_ms: int,
    ) -> None:
        self._index = {sid: i for i, sid in enumerate(signal_ids)}
        self._values = np.full(len(signal_ids), np.nan, dtype=np.float64)
        self._seen_ms = np.full(len(signal_ids), -(10**15), dtype=np.int64)
        self._last_any_ms = -(10**15)
        self.interval_ms = interval_ms
        self.stale_after_ms = stale_after_ms
        self.quiet_after_ms = quiet_after_ms
        self._next_row_ms: int | None = None

    def observe(self, signal_id: int, time_ms: int, value: float) -> bool:
        """Hold ``value`` if ``signal_id`` is a feature; return True when it is one."""
        i = self._index.get(signal_id)
        if i is None:
            return False
        self._values[i] = value if math.isfinite(value) else np.nan
        self._seen_ms[i] = time_ms
        self._last_any_ms = max(self._last_any_ms, time_ms)
        return True

    def due(self, now_ms: int) -> bool:
        """Return True when a row is due at ``now_ms``."""
        return self._next_row_ms is None or now_ms >= self._next_row_ms

    def take(self, now_ms: int) -> npt.NDArray[np.float64] | None:
        """Return the row at ``now_ms`` (a copy; NaN for missing features), or None while
        the stream is quiet; schedule the next row one interval later."""
        if self._next_row_ms is None or now_ms - self._next_row_ms > self.interval_ms:
            self._next_row_ms = now_ms
        self._next_row_ms += self.interval_ms
        if now_ms - self._last_any_ms > self.quiet_after_ms:
            return None
        row = self._values.copy()
        row[now_ms - self._seen_ms > self.stale_after_ms] = np.nan
        return row
