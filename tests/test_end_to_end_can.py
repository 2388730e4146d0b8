"""CAN end to end: the simulator's car (11-bit CAN on an SLCAN pty, plus OBD-II on its
ELM327) and truck (J1939 on an SLCAN pty) → edge agent processes → mosquitto → cloud ingest →
PostgreSQL → REST API, under VSS names."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from fleetlink.simulator.can_bus import SimulatedCanBus
from fleetlink.simulator.can_schedule import VehicleKind
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.cloud.conftest import bearer
from tests.end_to_end import cloud_with_tenant, spawn_agent, stop_agent
from tests.waiting import eventually

pytestmark = pytest.mark.integration

PROFILES: dict[VehicleKind, str] = {"car": "fleetlink-sim-car", "truck": "heavy-truck-j1939"}
# Signals only the CAN bus carries (the car's OBD poll reads none of them).
CAN_ONLY: dict[VehicleKind, set[str]] = {
    "car": {
        "Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed",
        "Vehicle.Acceleration.Longitudinal",
        "Vehicle.Chassis.SteeringWheel.Angle",
        "Vehicle.Speed",
    },
    "truck": {
        "Vehicle.Powertrain.CombustionEngine.Speed",
        "Vehicle.Speed",
        "Vehicle.OBD.FuelRate",
        "Vehicle.TraveledDistance",
        "Vehicle.OBD.DM1.ActiveSPN",
    },
}


def _config(
    tenant: str,
    device: str,
    mqtt_url: str,
    kind: VehicleKind,
    sim: SimulatedVehicle,
    bus: SimulatedCanBus,
) -> str:
    obd = (
        f'[obd]\nport = "{sim.port}"\nreconnect_min_s = 0.2\nprofile = "{PROFILES[kind]}"\n'
        if kind == "car"
        else ""
    )
    return f"""[device]
id = "{device}"
tenant = "{tenant}"
[mqtt]
url = "{mqtt_url}"
ack_timeout_s = 5.0
{obd}[can]
profile = "{PROFILES[kind]}"
interface = "slcan"
channel = "{bus.port}"
record = "{device}.asc"
[outbox]
path = "{device}.sqlite3"
batch_interval_s = 0.3
"""


async def test_car_and_truck_stream_decoded_can_signals_to_the_api(
    database_url: str, mqtt_broker, tmp_path: Path
) -> None:
    async with cloud_with_tenant(database_url, mqtt_broker.url, "can") as cloud:
        tenant = cloud.tenant
        sims: list[SimulatedVehicle] = []
        buses: list[SimulatedCanBus] = []
        agents: list[subprocess.Popen[bytes]] = []
        vehicles: dict[VehicleKind, str] = {}
        try:
            for seed, kind in enumerate(("car", "truck"), start=1):
                sim = SimulatedVehicle(seed=seed, style=0.5, latency_s=0.005)
                sim.start()
                sims.append(sim)
                bus = SimulatedCanBus(sim.vehicle, kind, "slcan", seed=seed)
                bus.start()
                buses.append(bus)
                device = f"{tenant}-{kind}"
                vehicles[kind] = str(await cloud.vehicle_for(device, f"Sim {kind}"))
                config = tmp_path / f"{device}.toml"
                config.write_text(_config(tenant, device, mqtt_broker.url, kind, sim, bus))
                agents.append(spawn_agent(config, tmp_path / f"{device}.log"))

            api = cloud.api
            token = await cloud.viewer_token()
            async with aiohttp.ClientSession(headers=bearer(token)) as http:

                async def latest(kind: VehicleKind) -> set[str]:
                    async with http.get(f"{api}/vehicles/{vehicles[kind]}/signals/latest") as resp:
                        assert resp.status == 200, await resp.text()
                        return {s["name"] for s in (await resp.json())["signals"]}

                async def every_signal_arrived() -> bool:
                    return CAN_ONLY["car"] <= await latest("car") and CAN_ONLY[
                        "truck"
                    ] <= await latest("truck")

                await eventually(
                    every_signal_arrived, 60, "CAN signals of both vehicles in the API"
                )
                car = await latest("car")
                assert "Vehicle.OBD.EngineLoad" in car  # polled over OBD-II beside the CAN bus
            for agent in agents:
                agent.send_signal(signal.SIGTERM)
            for agent in agents:
                assert agent.wait(timeout=30) == 0
            for kind in ("car", "truck"):
                assert (tmp_path / f"{tenant}-{kind}.asc").stat().st_size > 0
        finally:
            for agent in agents:
                stop_agent(agent)
            for bus in buses:
                bus.stop()
            for sim in sims:
                sim.stop()
