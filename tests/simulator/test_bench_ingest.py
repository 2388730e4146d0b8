"""``fleetlink bench ingest`` runs the ingest as deployed (its own processes, on a mosquitto
it starts with the recommended windows), waits until every batch it published is committed,
and measures both ceilings; no figure is asserted, only that each was measured."""

from __future__ import annotations

import pytest

from fleetlink.simulator.bench.ingest import run_bench
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_bench_measures_ingest_processes_and_both_ceilings() -> None:
    result = await run_bench(
        PG_ADMIN_URL, None, devices=30, batches=2, samples=20, repetitions=2, processes=2
    )
    assert result.samples_per_run == 30 * 2 * 20
    assert result.messages_per_run == 60
    assert len(result.ingest_runs) == len(result.copy_runs) == 2
    assert all(r > 0 for r in result.ingest_runs + result.copy_runs)
    assert result.pubsub_runs is not None and len(result.pubsub_runs) == 2
    assert result.pubsub_dropped == 0  # the tuned broker queues the whole burst
