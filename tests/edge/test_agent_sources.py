"""Any Source plugs into the agent's core unchanged, and its samples reach the outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fleetlink.edge.agent import Agent
from fleetlink.edge.config import parse_config
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.sources.base import Sample, Source
from fleetlink.shared.codec import decode
from fleetlink.shared.messages import TelemetryBatch


class CountingSource(Source):
    """Emits ``count`` GNSS latitude samples, then idles until stopped."""

    name = "counting"

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def _run(self) -> None:
        for i in range(self.count):
            self.emit(Sample(257, 1_700_000_000_000 + i * 10, 52.0 + i / 1000))
        self._state = "connected"
        self.stopping.wait()


async def test_a_new_source_needs_no_change_to_the_core(tmp_path: Path) -> None:
    config = parse_config(
        {
            "device": {"id": "plug-1", "tenant": "acme"},
            "mqtt": {"url": "mqtt://127.0.0.1:9"},
            "outbox": {"path": str(tmp_path / "o.db"), "max_batch_samples": 25},
        }
    )
    agent = Agent(config, sources=[CountingSource(60)])
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.sleep(0.5)
    assert agent.adapter_state() == "connected"
    stop.set()
    await asyncio.wait_for(task, 10)

    with Outbox(tmp_path / "o.db") as outbox:
        batches = [decode(b.payload, TelemetryBatch) for b in outbox.pending()]
    assert [b.seq for b in batches] == [1, 2, 3]
    assert [b.sample_count for b in batches] == [25, 25, 10]
    values = [v for b in batches for s in b.series for v in s.values]
    assert values == [52.0 + i / 1000 for i in range(60)]
