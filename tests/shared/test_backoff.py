"""Reconnect backoff: jittered, growing to the cap, back to the start after a success."""

from __future__ import annotations

import random

import pytest

from fleetlink.shared.backoff import Backoff


def test_delays_are_jittered_grow_exponentially_to_the_cap_and_reset() -> None:
    backoff = Backoff(1.0, 16.0, random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0]
    assert all(1.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[2:]}) == 6  # no two devices wait alike
    backoff.reset()
    assert backoff.next() == 1.0


def test_a_fleet_spreads_its_reconnects_across_the_window() -> None:
    waits = []
    for seed in range(200):
        backoff = Backoff(1.0, 8.0, random.Random(seed))
        waits.append(sum(backoff.next() for _ in range(4)))
    assert max(waits) - min(waits) > 5.0


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (2.0, 1.0)])
def test_impossible_bounds_are_refused(low: float, high: float) -> None:
    with pytest.raises(ValueError):
        Backoff(low, high)
