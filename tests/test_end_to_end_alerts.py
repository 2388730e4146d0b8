"""In-cab alerts end to end: the simulated car overheats (an injected cooling failure) → the
agent's coolant rule → a nudge on the cab display (read over SSE) and in the terminal → a
repeat escalates → the driver acknowledges on the display → mosquitto → cloud ingest →
PostgreSQL → the vehicle's event list in the API, and the escalation in the inbox."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleetlink.simulator.fleet import SimulatedVehicle
from tests.cloud.conftest import bearer
from tests.conftest import free_port
from tests.end_to_end import cloud_with_tenant, spawn_agent, stop_agent
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def _config(tenant: str, device: str, mqtt_url: str, port: str, display_port: int) -> str:
    return f"""[device]
id = "{device}"
tenant = "{tenant}"
[mqtt]
url = "{mqtt_url}"
ack_timeout_s = 5.0
[obd]
port = "{port}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[[obd.poll]]
commands = ["SPEED", "RPM", "COOLANT_TEMP"]
rate_hz = 4.0
[outbox]
path = "outbox.sqlite3"
batch_interval_s = 0.3
[alerts]
sinks = ["terminal", "cab_display"]
display_port = {display_port}
cooldown_s = 0
[alerts.rules.coolant_overheat]
escalate_after = 2
escalate_within_min = 10
"""


async def _next_alerts(stream: aiohttp.StreamReader) -> list[dict[str, Any]]:
    """Return the list of the next ``alerts`` server-sent event."""
    data = None
    while True:
        line = (await stream.readline()).decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            return data


async def test_overheat_nudges_in_the_cab_escalates_on_repeat_and_reaches_the_api(
    database_url: str, mqtt_broker, tmp_path: Path
) -> None:
    async with cloud_with_tenant(database_url, mqtt_broker.url, "alerts") as cloud:
        conn, tenant = cloud.conn, cloud.tenant
        device = f"{tenant}-dev"
        display_port = free_port()
        sim = SimulatedVehicle(seed=3, latency_s=0.005)
        sim.start()
        agent: subprocess.Popen[bytes] | None = None
        terminal = tmp_path / "terminal.txt"
        display = f"http://127.0.0.1:{display_port}"
        try:
            vehicle_id = await cloud.vehicle_for(device, "Overheating van")
            config = tmp_path / "device.toml"
            config.write_text(_config(tenant, device, mqtt_broker.url, sim.port, display_port))
            agent = spawn_agent(config, tmp_path / "agent.log", stdout=terminal.open("wb"))
            async with aiohttp.ClientSession() as cab:

                async def display_up() -> bool:
                    try:
                        async with cab.get(f"{display}/alerts.json") as resp:
                            return resp.status == 200
                    except aiohttp.ClientConnectionError:
                        return False

                await eventually(display_up, 30, "the cab display to answer")
                async with cab.get(f"{display}/events") as events:
                    assert await _next_alerts(events.content) == []
                    sim.vehicle.inject_overheat(15.0)  # the fan died
                    (nudge,) = await asyncio.wait_for(_next_alerts(events.content), 60)
                assert nudge["rule"] == "coolant_overheat" and not nudge["escalated"]
                assert "Engine overheating" in nudge["message"]
                await eventually(
                    lambda: "Engine overheating" in terminal.read_text(), 10, "terminal"
                )

                # Repaired, cooled below 105 °C, then it fails again: the repeat escalates.
                sim.vehicle.inject_overheat(0.0)
                await asyncio.sleep(6.0)
                sim.vehicle.inject_overheat(15.0)

                async def escalated_alert() -> dict[str, Any] | None:
                    async with cab.get(f"{display}/alerts.json") as resp:
                        shown = (await resp.json())["alerts"]
                    return next((a for a in shown if a["escalated"]), None)

                await eventually(escalated_alert, 60, "the repeat to escalate")
                second = await escalated_alert()
                assert second is not None
                assert "reported to your fleet manager" in terminal.read_text()

                # The driver presses Acknowledge on the first alert.
                async with cab.post(
                    f"{display}/ack", data={"id": nudge["id"]}, allow_redirects=False
                ) as resp:
                    assert resp.status == 303

            async def cloud_has_everything() -> bool:
                types = await conn.fetch(
                    "SELECT type FROM events WHERE device_id = $1 AND type = ANY ($2::text[])",
                    device,
                    ["alert", "vehicle_alert", "alert_ack"],
                )
                found = [r["type"] for r in types]
                return (
                    found.count("alert") >= 2 and "vehicle_alert" in found and "alert_ack" in found
                )

            await eventually(cloud_has_everything, 60, "the alerts in PostgreSQL")

            api = cloud.api
            token = await cloud.viewer_token()
            async with aiohttp.ClientSession(headers=bearer(token)) as http:
                url = f"{api}/vehicles/{vehicle_id}/events"
                async with http.get(url, params={"type": "alert,vehicle_alert,alert_ack"}) as resp:
                    assert resp.status == 200
                    listed = (await resp.json())["items"]
            by_type: dict[str, list[dict[str, Any]]] = {}
            for item in listed:
                by_type.setdefault(item["type"], []).append(item)
            assert {a["id"] for a in by_type["alert"]} >= {nudge["id"], second["id"]}
            first = next(a for a in by_type["alert"] if a["id"] == nudge["id"])
            assert first["severity"] == "info" and first["data"]["rule"] == "coolant_overheat"
            assert first["data"]["value"] > 110.0
            assert "window:Vehicle.Powertrain.CombustionEngine.ECT" in first["data"]
            (escalation,) = by_type["vehicle_alert"]
            assert escalation["severity"] == "critical"
            assert escalation["data"]["alert_id"] == second["id"]
            assert escalation["data"]["repeats"] == 2
            (ack,) = by_type["alert_ack"]
            assert ack["data"]["alert_id"] == nudge["id"] and ack["data"]["via"] == "display"
            # The escalation opens an inbox item for the fleet manager; nudges do not.
            inbox = await conn.fetch(
                "SELECT type, severity FROM inbox_items WHERE device_id = $1", device
            )
            assert [(r["type"], r["severity"]) for r in inbox] == [("vehicle_alert", "critical")]

            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=30) == 0
        finally:
            stop_agent(agent)
            sim.stop()
