"""``fleetlink bench storage`` loads every layout with the same samples and every layout's
queries return the same rows as today's layout."""

from __future__ import annotations

import pytest

from fleetlink.simulator.bench.storage import report, run_bench
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_layout_holds_the_samples_and_blocks_take_the_fewest_bytes() -> None:
    result = await run_bench(PG_ADMIN_URL, 4, 3, 2, 60, 1, lambda _: None)
    assert result.samples == 4 * 3 * 2 * 1440
    sizes = {name: fig.bytes_total for name, fig in result.layouts.items()}
    assert sizes["hourly"] < sizes["narrow"] < sizes["today"]
    today = result.layouts["today"].rows_returned
    assert today["day"][0] == 3 * 1440 and today["range"][0] == 2 * 1440
    for fig in result.layouts.values():
        for query, counts in fig.rows_returned.items():
            assert counts == today[query], query
    table = report(result)
    assert "hourly arrays" in table and "vs today" in table
