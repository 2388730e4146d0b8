"""Windows of rows → scores → debounced detections.

A window is scored every ``hop_rows`` rows once ``window_rows`` rows are held; a window with
a missing (NaN) value is not scored (counted). ``consecutive`` windows over the threshold
make one detection; the next needs a window under the threshold first, so a lasting fault is
reported once, not every few seconds.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetlink.edge.anomaly.card import ModelCard
from fleetlink.edge.anomaly.scorer import Scorer
from fleetlink.edge.anomaly.windows import window_vector


@dataclass(frozen=True, slots=True)
class Detection:
    """One anomaly: the last window's score and the features ranked by their error."""

    score: float
    threshold: float
    top_features: tuple[str, ...]
    feature_errors: tuple[float, ...]


class WindowDetector:
    """Feeds rows (1 per ``card.row_interval_ms``) to a scorer and debounces its verdicts."""

    def __init__(self, card: ModelCard, scorer: Scorer, consecutive: int | None = None) -> None:
        self.card = card
        self.scorer = scorer
        self.consecutive = consecutive or card.consecutive
        self._rows: deque[npt.NDArray[np.float64]] = deque(maxlen=card.window_rows)
        self._since_score = 0
        self._streak = 0
        self._armed = True
        self.counters: Counter[str] = Counter()
        self.last_score: float | None = None
        # The features missing from the last window due (empty when it was scored).
        self.missing: tuple[str, ...] = ()
        gate = card.gate
        self._gate = None if gate is None else (card.features.index(gate.signal), gate.min_value)

    def reset(self) -> None:
        """Forget the rows held (the stream went quiet or the gate closed); return None."""
        self._rows.clear()
        self._since_score = 0
        self._streak = 0

    def push(self, row: npt.NDArray[np.float64]) -> Detection | None:
        """Add one row; return a detection when this row completes the debounce. A row the
        card's gate shuts (the engine is off) starts the window again."""
        if self._gate is not None and not row[self._gate[0]] >= self._gate[1]:
            self.counters["rows_gated"] += 1
            self.reset()
            return None
        self._rows.append(row)
        self._since_score += 1
        if len(self._rows) < self.card.window_rows or self._since_score < self.card.hop_rows:
            return None
        self._since_score = 0
        rows = np.stack(self._rows)
        finite = np.isfinite(rows)
        if not finite.all():
            self.counters["windows_skipped_missing"] += 1
            present = [bool(ok) for ok in np.all(finite, axis=0)]
            self.missing = tuple(
                name for name, ok in zip(self.card.features, present, strict=True) if not ok
            )
            self._streak = 0
            return None
        self.missing = ()
        score, errors = self.scorer.score(window_vector(rows))
        self.counters["windows_scored"] += 1
        self.last_score = score
        if score <= self.card.threshold:
            self._streak = 0
            self._armed = True
            return None
        self.counters["windows_over_threshold"] += 1
        self._streak += 1
        if self._streak < self.consecutive or not self._armed:
            return None
        self._armed = False
        order = np.argsort(errors)[::-1]
        return Detection(
            score=score,
            threshold=self.card.threshold,
            top_features=tuple(self.card.features[i] for i in order),
            feature_errors=tuple(float(errors[i]) for i in order),
        )
