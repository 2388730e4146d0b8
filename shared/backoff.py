"""Jittered exponential backoff for reconnects ("full jitter").

Each wait is drawn uniformly between ``min_s`` and an upper bound that doubles per attempt up
to ``max_s``, so a fleet that lost its broker at one instant does not come back in lockstep.
"""

from __future__ import annotations

import random


class Backoff:
    """The delays of successive reconnect attempts; ``reset()`` after a success."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError("need 0 < min_s <= max_s")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        ceiling = min(self.max_s, self.min_s * 2.0**self.attempt)
        self.attempt += 1
        return self._rng.uniform(self.min_s, ceiling)

    def reset(self) -> None:
        self.attempt = 0
