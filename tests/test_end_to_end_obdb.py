"""A simulated Bolt EV answering its OBDb signalset over a pty → the agent (mode 22 and mode 01)
→ mosquitto → cloud ingest → REST API: the state of charge falls and the vehicle's odometer
follows the one the vehicle reports."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.obdb_ecus import ObdbEcus, TractionBattery
from tests.cloud.conftest import bearer
from tests.end_to_end import cloud_with_tenant, spawn_agent
from tests.field_data import field_data
from tests.waiting import eventually

FIELD = field_data("obdb")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not FIELD.is_dir(), reason=f"OBDb field data not present at {FIELD}"),
]
FILES = [
    FIELD / name / "signalsets" / "v3" / "default.json"
    for name in ("Chevrolet-Bolt-EV", "Chevrolet")
]
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"
ODOMETER = "Vehicle.TraveledDistance"


def _write_config(path: Path, tenant: str, device: str, mqtt_url: str, port: str) -> None:
    signalsets = ", ".join(f'"{f}"' for f in FILES)
    path.write_text(
        f"""[device]
id = "{device}"
tenant = "{tenant}"
[mqtt]
url = "{mqtt_url}"
ack_timeout_s = 5.0
[obd]
port = "{port}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
signalsets = [{signalsets}]
model_year = 2019
[[obd.poll]]
commands = ["RPM", "SPEED"]
rate_hz = 2.0
[outbox]
path = "{device}.sqlite3"
batch_interval_s = 0.3
"""
    )


async def test_a_bolt_ev_streams_its_battery_and_odometer_to_the_api(
    database_url: str, mqtt_broker: Any, tmp_path: Path
) -> None:
    async with cloud_with_tenant(database_url, mqtt_broker.url, "obdb") as cloud:
        tenant = cloud.tenant
        device = f"{tenant}-bolt"
        ecus = ObdbEcus.from_files(FILES, 2019, TractionBattery(pct_per_km=1.0))
        sim = SimulatedVehicle(seed=5, style=0.6, latency_s=0.005, speed_factor=10, obdb=ecus)
        agent: subprocess.Popen[bytes] | None = None
        try:
            vehicle_id = await cloud.vehicle_for(device, "Bolt EV")
            port = sim.start()
            config = tmp_path / "agent.toml"
            _write_config(config, tenant, device, mqtt_broker.url, port)
            agent = spawn_agent(config, tmp_path / "agent.log", cwd=tmp_path)
            api = cloud.api
            token = await cloud.viewer_token()
            async with aiohttp.ClientSession(headers=bearer(token)) as http:

                async def latest() -> dict[str, float]:
                    async with http.get(f"{api}/vehicles/{vehicle_id}/signals/latest") as resp:
                        assert resp.status == 200, await resp.text()
                        body = await resp.json()
                    return {s["name"]: s["value"] for s in body["signals"]}

                async def vehicle_odometer() -> float | None:
                    async with http.get(f"{api}/vehicles/{vehicle_id}") as resp:
                        assert resp.status == 200, await resp.text()
                        return (await resp.json())["odometer_km"]  # type: ignore[no-any-return]

                first: dict[str, float] = {}

                async def has_battery_and_odometer() -> bool:
                    first.update(await latest())
                    return SOC in first and ODOMETER in first

                await eventually(has_battery_and_odometer, 60, "SoC and odometer in the API")
                assert {"Vehicle.Speed", "Vehicle.Powertrain.CombustionEngine.Speed"} <= set(first)
                assert 0 < first[SOC] <= 90.01

                now: dict[str, float] = {}

                async def soc_fell_and_odometer_followed() -> bool:
                    now.clear()
                    now.update(await latest())
                    odometer = await vehicle_odometer()
                    return (
                        now[SOC] < first[SOC] - 0.1
                        and now[ODOMETER] > first[ODOMETER]
                        and odometer is not None
                        and odometer >= first[ODOMETER]
                    )

                await eventually(soc_fell_and_odometer_followed, 60, "SoC falling, odometer moving")
                odometer = await vehicle_odometer()
                assert odometer is not None
                assert odometer == pytest.approx(sim.snapshot().odometer_km, abs=1.0)
                tyres = [v for k, v in now.items() if k.endswith(".Tire.Pressure")]
                assert len(tyres) == 4 and all(230 < v < 250 for v in tyres)
        finally:
            if agent is not None:
                agent.terminate()
                try:
                    agent.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    agent.kill()
            sim.stop()
