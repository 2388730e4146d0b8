"""The agent's /metrics on localhost: outbox depth, unacked and uplink counts move with real
traffic through mosquitto to an acking cloud double; off unless ``[metrics] port`` is set."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from pathlib import Path

from fleetlink.edge.agent import Agent
from fleetlink.edge.config import load_config
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Series, TelemetryBatch
from tests.conftest import Broker, free_port
from tests.edge.cloud_double import TENANT, Cloud
from tests.waiting import eventually


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(fleetlink_agent_[^ ]+) ([0-9.e+-]+)$", text, re.M)
    }


def _config(tmp_path: Path, device_id: str, broker: Broker, port: int) -> Path:
    path = tmp_path / "device.toml"
    metrics = f"\n[metrics]\nport = {port}\n" if port else ""
    path.write_text(
        f"""
[device]
id = "{device_id}"
tenant = "{TENANT}"

[mqtt]
url = "{broker.url}"

[outbox]
path = "outbox.db"
batch_interval_s = 1
{metrics}""",
        encoding="utf-8",
    )
    return path


def _batch(device_id: str, seq: int) -> bytes:
    series = [Series(signal_id=0x0D, offsets_ms=[0, 100], values=[50.0, 51.0])]
    return encode(TelemetryBatch(device_id=device_id, seq=seq, base_time_ms=0, series=series))


async def test_agent_metrics_show_outbox_depth_then_acks_after_real_traffic(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    device_id = f"metrics-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = load_config(_config(tmp_path, device_id, mqtt_broker, port))
    agent = Agent(config, sources=[])
    for _ in range(3):
        agent.outbox.add("telemetry", lambda seq: _batch(device_id, seq), samples=2)
    cloud = Cloud(mqtt_broker.url, device_id, auto_ack=False)
    await cloud.wait_subscribed()
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: len(cloud.bodies) >= 3, 20)
        seen = await asyncio.to_thread(_scrape, port)
        assert seen["fleetlink_agent_outbox_batches"] == 3
        assert seen["fleetlink_agent_unacked"] == 3
        assert seen['fleetlink_agent_uplink_total{event="published"}'] >= 3
        assert seen["fleetlink_agent_broker_connected"] == 1
        assert seen['fleetlink_agent_adapter_state{state="unknown"}'] == 1
        cloud.ack(sorted(set(cloud.seqs())))
        await eventually(lambda: len(agent.outbox) == 0, 20)
        seen = await asyncio.to_thread(_scrape, port)
        assert seen["fleetlink_agent_outbox_batches"] == 0
        assert seen["fleetlink_agent_unacked"] == 0
        assert seen['fleetlink_agent_uplink_total{event="acked"}'] >= 3
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        cloud.close()


def test_agent_metrics_are_off_unless_a_port_is_configured(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "quiet-device", Broker("127.0.0.1", 1883), 0))
    assert config.metrics.port == 0
