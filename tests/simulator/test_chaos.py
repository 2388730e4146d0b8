"""The short chaos run (CI): every fault once against real agents, broker, cloud and database;
nothing lost, nothing twice. The long run is ``fleetlink sim chaos --minutes 20``."""

from __future__ import annotations

import asyncio
import shutil

from fleetlink.simulator.chaos.run import ChaosRun
from fleetlink.simulator.chaos.schedule import KINDS, faults


def test_the_fault_schedule_is_reproducible_from_the_seed_and_meets_every_kind() -> None:
    first = [f for _, f in zip(range(33), faults(7, 5, 0), strict=False)]
    again = [f for _, f in zip(range(33), faults(7, 5, 0), strict=False)]
    other = [f for _, f in zip(range(33), faults(8, 5, 0), strict=False)]
    assert first == again and first != other
    assert all(sum(f.kind == k for f in first) == 3 for k in KINDS)


def test_a_short_chaos_run_loses_nothing_and_stores_nothing_twice() -> None:
    run = ChaosRun(vehicles=4, minutes=1.0, seed=20261129, quick=True, say=lambda _: None)
    try:
        summary = asyncio.run(run.run())
    finally:
        shutil.rmtree(run.root, ignore_errors=True)
    print(summary.render())
    t = summary.tally
    assert {f.kind for f, _ in summary.ran} == set(KINDS)
    assert t.produced > 10_000 and t.stored > 0
    assert t.quarantined > 0  # the device whose clock is hours ahead
    assert t.cap_gaps > 0 and t.cap_gap_samples > 0  # the deliberately filled cap
    assert t.duplicate_deliveries_absorbed > 0  # replays and redeliveries arrived twice
    assert (t.lost, t.duplicated) == (0, 0), summary.render()
