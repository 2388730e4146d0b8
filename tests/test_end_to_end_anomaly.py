"""An injected fault on a simulated car → the agent's anomaly model → an ``anomaly`` event in
the cloud's events table, through the ELM327 pty, real mosquitto and the ingest."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import asyncpg
import pytest

from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.vehicle import Vehicle
from fleetlink.simulator.wear import WearState
from tests.end_to_end import cloud_with_tenant, spawn_agent, stop_agent
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def _config(path: Path, tenant: str, device: str, mqtt_url: str, port: str) -> None:
    path.write_text(
        f"""[device]
id = "{device}"
tenant = "{tenant}"
[mqtt]
url = "{mqtt_url}"
[obd]
port = "{port}"
battery_rate_hz = 1.0
[[obd.poll]]
commands = ["RPM", "SPEED", "ENGINE_LOAD", "THROTTLE_POS", "MAF", "COOLANT_TEMP"]
rate_hz = 2.0
[anomaly]
profile = "fleetlink-sim-car"
consecutive_windows = 1
[outbox]
path = "{path.parent / device}.sqlite3"
batch_interval_s = 0.5
"""
    )


async def test_a_failing_alternator_reaches_the_cloud_as_an_anomaly_event(
    database_url: str, mqtt_broker, tmp_path: Path
) -> None:
    vehicle = Vehicle(4, ambient_temp_c=20.0)
    vehicle.set_wear(WearState(charging_loss_v=1.5))
    sim = SimulatedVehicle(seed=4, style=0.4, latency_s=0.005, vehicle=vehicle)
    agent = None
    async with cloud_with_tenant(database_url, mqtt_broker.url, "anom") as cloud:
        conn, device = cloud.conn, f"{cloud.tenant}-dev"
        try:
            sim.start()
            await cloud.vehicle_for(device, "Van")
            config = tmp_path / "agent.toml"
            _config(config, cloud.tenant, device, mqtt_broker.url, sim.port or "")
            agent = spawn_agent(config, tmp_path / "agent.log")

            async def anomaly() -> asyncpg.Record | None:
                return await conn.fetchrow(
                    "SELECT data FROM events WHERE device_id = $1 AND type = 'anomaly'", device
                )

            await eventually(anomaly, 120, "an anomaly event in the events table")
            record = await anomaly()
            assert record is not None
            data = json.loads(record["data"]) if isinstance(record["data"], str) else record["data"]
            assert data["model"] == "sim-car-anomaly"
            assert float(data["score"]) > float(data["threshold"])
            assert "Vehicle.LowVoltageBattery.CurrentVoltage" in data["signals"]
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=30) == 0
        finally:
            stop_agent(agent)
            sim.stop()
