"""Retry delays of notifications: exponential, capped, with jitter so that many failed
deliveries to one receiver do not all come back at the same instant."""

from __future__ import annotations

import random


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Return the delay before retry number ``attempt`` (1 after the first failure): a random
    value between half and all of ``min(max_s, base_s * 2 ** (attempt - 1))``."""
    ceiling = min(max_s, base_s * 2 ** min(max(attempt - 1, 0), 60))
    return ceiling * (0.5 + 0.5 * (rng or random).random())
