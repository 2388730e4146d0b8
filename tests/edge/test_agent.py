"""The whole agent: simulated vehicle → OBD source → batcher → outbox → mosquitto → acking cloud."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlink.edge.agent import Agent
from fleetlink.edge.config import load_config
from fleetlink.edge.outbox import Outbox
from fleetlink.shared.codec import decode
from fleetlink.shared.messages import EventBatch, TelemetryBatch
from tests.conftest import Broker
from tests.edge.cloud_double import TENANT, Cloud
from tests.waiting import eventually

fleet = pytest.importorskip("fleetlink.simulator.fleet", reason="the simulator has not landed")
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def vehicle_port() -> Iterator[str]:
    sim = fleet.SimulatedVehicle(seed=11, style=0.6, latency_s=0.005)
    yield sim.start()
    sim.stop()


def write_config(
    tmp_path: Path, device_id: str, mqtt_url: str, port: str, interval_s: float
) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(
        f"""
[device]
id = "{device_id}"
tenant = "{TENANT}"

[mqtt]
url = "{mqtt_url}"

[obd]
port = "{port}"
baudrate = 38400
timeout_s = 0.2

[[obd.poll]]
commands = ["RPM", "SPEED"]
rate_hz = 10

[[obd.poll]]
commands = ["COOLANT_TEMP"]
rate_hz = 1

[outbox]
path = "outbox.db"
batch_interval_s = {interval_s}
""",
        encoding="utf-8",
    )
    return path


async def test_samples_reach_the_cloud_and_leave_the_outbox_once_acked(
    tmp_path: Path, mqtt_broker: Broker, vehicle_port: str
) -> None:
    device_id = f"agent-{uuid.uuid4().hex[:8]}"
    config = load_config(write_config(tmp_path, device_id, mqtt_broker.url, vehicle_port, 0.5))
    cloud = Cloud(mqtt_broker.url, device_id, auto_ack=True)
    await cloud.wait_subscribed()
    agent = Agent(config)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: len(cloud.bodies) >= 3, 20)
        assert agent.adapter_state() == "connected"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        cloud.close()
    batches = [TelemetryBatch.model_validate(body) for body in cloud.bodies if "series" in body]
    seqs = [b.seq for b in batches]
    assert seqs == sorted(set(seqs))
    signals = {s.signal_id for b in batches for s in b.series}
    assert {0x0C, 0x0D, 0x05, 256} <= signals
    events = [EventBatch.model_validate(body) for body in cloud.bodies if "events" in body]
    identified = [e for b in events for e in b.events if e.type == "vehicle_identified"]
    assert identified and identified[0].data["profile"] == "generic-obd2"
    with Outbox(config.outbox.path) as outbox:
        left = {b.seq for b in outbox.pending()}
        assert left.isdisjoint(seqs)


def test_sigterm_stores_the_partial_batch_before_exiting(tmp_path: Path, vehicle_port: str) -> None:
    device_id = f"agent-{uuid.uuid4().hex[:8]}"
    unused_broker = "mqtt://127.0.0.1:9"
    config = write_config(tmp_path, device_id, unused_broker, vehicle_port, 600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlink.edge", "run", "--config", str(config), "--log-json"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    for line in proc.stderr:
        if "connected to the vehicle" in line:
            break
        assert time.monotonic() < deadline, "the agent never connected to the vehicle"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    with Outbox(tmp_path / "outbox.db") as outbox:
        pending = outbox.pending()
    telemetry = [p for p in pending if p.kind == "telemetry"]
    assert len(telemetry) == 1 and [p.kind for p in pending].count("events") == 1
    batch = decode(telemetry[0].payload, TelemetryBatch)
    assert batch.seq == 2 and batch.sample_count >= 5


def test_batches_the_outbox_refuses_wait_in_memory_and_are_stored_in_order_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetlink.edge.outbox import OutboxError
    from fleetlink.edge.sources.base import Sample

    config = load_config(write_config(tmp_path, "dev-disk", "mqtt://127.0.0.1:1", "/dev/null", 1))
    agent = Agent(config, sources=[])
    real_add = agent.outbox.add
    failures = iter([True, True])

    def failing_add(kind, build, samples=0):  # type: ignore[no-untyped-def]
        if next(failures, False):
            raise OutboxError("outbox.db: cannot store a telemetry batch: disk I/O error")
        return real_add(kind, build, samples)

    monkeypatch.setattr(agent.outbox, "add", failing_add)
    for value in (1.0, 2.0, 3.0):
        agent.batcher.add(Sample(signal_id=12, time_ms=1_000 + int(value), value=value))
        agent.flush()
    assert agent.counters["outbox_write_failures"] == 2
    assert not agent.unstored
    stored = [decode(b.payload, TelemetryBatch) for b in agent.outbox.pending()]
    assert [b.seq for b in stored] == [1, 2, 3]
    assert [b.series[0].values for b in stored] == [[1.0], [2.0], [3.0]]
    agent.outbox.close()


def test_batches_that_overflow_memory_while_the_outbox_fails_become_one_gap_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetlink.edge import agent as agent_module
    from fleetlink.edge.outbox import OutboxError
    from fleetlink.edge.sources.base import Sample

    monkeypatch.setattr(agent_module, "_UNSTORED_MAX", 2)
    config = load_config(write_config(tmp_path, "dev-full", "mqtt://127.0.0.1:1", "/dev/null", 1))
    agent = Agent(config, sources=[])
    real_add = agent.outbox.add
    failing = [True]

    def add(kind, build, samples=0):  # type: ignore[no-untyped-def]
        if failing[0]:
            raise OutboxError("outbox.db: cannot store a telemetry batch: disk full")
        return real_add(kind, build, samples)

    monkeypatch.setattr(agent.outbox, "add", add)
    for i in range(5):  # batches 1..3 overflow the two kept in memory
        agent.batcher.add(Sample(signal_id=12 + i % 2, time_ms=1_000 + i, value=float(i)))
        agent.flush()
    assert agent.counters["dropped_unstored"] == 3
    failing[0] = False
    agent.flush()
    pending = agent.outbox.pending()
    assert [b.kind for b in pending] == ["events", "telemetry", "telemetry"]
    (gap,) = decode(pending[0].payload, EventBatch).events
    assert gap.type == "gap" and gap.data["reason"] == "memory_overflow"
    assert (gap.data["start_ms"], gap.data["end_ms"]) == (1_000, 1_002)
    assert gap.data["samples"] == 3 and gap.data["signals"] == "12-13"
    assert agent.outbox.samples_added == 2
    agent.outbox.close()


async def test_a_stalled_adapter_is_reported_to_the_cloud_and_recovers_without_restart(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    sim = fleet.SimulatedVehicle(seed=12, style=0.6, latency_s=0.005)
    port = sim.start()
    device_id = f"agent-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path, device_id, mqtt_broker.url, port, 0.5)
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "timeout_s = 0.2", "timeout_s = 0.2\nstall_after_s = 1.5"
        ),
        encoding="utf-8",
    )
    config = load_config(path)
    cloud = Cloud(mqtt_broker.url, device_id, auto_ack=True)
    await cloud.wait_subscribed()
    agent = Agent(config)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: any(s.adapter == "connected" for s in cloud.statuses), 20)
        sim.elm327.stall(6)
        await eventually(lambda: cloud.statuses[-1].adapter == "stalled", 5)
        await eventually(lambda: cloud.statuses[-1].adapter == "connected", 20)
        received = len(cloud.bodies)
        await eventually(lambda: len(cloud.bodies) > received, 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        cloud.close()
        sim.stop()
    adapters = [s.adapter for s in cloud.statuses if s.online]
    assert "stalled" in adapters
    assert agent.sources[0].counters["connect_attempts"] == 1


def test_json_logs_stay_json_with_python_obd_routed_through_them(
    tmp_path: Path, vehicle_port: str
) -> None:
    config = write_config(tmp_path, "dev-json", "mqtt://127.0.0.1:9", vehicle_port, 600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlink.edge", "run", "--config", str(config), "--log-json"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 20
    for line in proc.stderr:
        lines.append(line)
        if "connected to the vehicle" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=15)
    lines.extend(rest.splitlines())
    import json

    records = [json.loads(line) for line in lines if line.strip()]
    assert any("connected to the vehicle" in r["message"] for r in records)
    assert not any("Redefining" in r["message"] for r in records)
    import logging

    obd_logger = logging.getLogger("obd")
    import fleetlink.edge.link.python_obd  # noqa: F401

    assert obd_logger.handlers == [] and obd_logger.propagate
