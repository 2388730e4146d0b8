"""The whole path: simulated vehicles → ELM327 ptys → edge agent processes → mosquitto →
cloud ingest → PostgreSQL → REST API, proving every produced seq is stored exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from fleetlink.edge.outbox import Outbox
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.cloud.conftest import bearer
from tests.end_to_end import EndToEndCloud, cloud_with_tenant, spawn_agent, stop_agent
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def _write_config(path: Path, tenant: str, device: str, mqtt_url: str, port: str) -> None:
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
[[obd.poll]]
commands = ["RPM", "SPEED", "THROTTLE_POS"]
rate_hz = 5.0
[[obd.poll]]
commands = ["COOLANT_TEMP", "FUEL_LEVEL"]
rate_hz = 1.0
[outbox]
path = "{device}.sqlite3"
batch_interval_s = 0.3
"""
    )


async def _stored_seqs(conn: asyncpg.Connection, device: str) -> list[int]:
    rows = await conn.fetch(
        "SELECT seq FROM ingested_batches WHERE device_id = $1 ORDER BY seq", device
    )
    return [r["seq"] for r in rows]


async def test_two_vehicles_every_seq_stored_exactly_once_and_readable_through_the_api(
    database_url: str, mqtt_broker, tmp_path: Path
) -> None:
    sims: list[SimulatedVehicle] = []
    agents: dict[str, subprocess.Popen[bytes]] = {}
    vehicle_ids: dict[str, uuid.UUID] = {}
    async with cloud_with_tenant(database_url, mqtt_broker.url, "e2e") as cloud:
        conn, tenant = cloud.conn, cloud.tenant
        devices = [f"{tenant}-dev-1", f"{tenant}-dev-2"]
        try:
            for i, device in enumerate(devices, start=1):
                sim = SimulatedVehicle(seed=i, style=0.3 * i, latency_s=0.005)
                sim.start()
                sims.append(sim)
                vehicle_ids[device] = await cloud.vehicle_for(device, f"Truck {i}")
                config = tmp_path / f"{device}.toml"
                _write_config(config, tenant, device, mqtt_broker.url, sim.port)
                agents[device] = spawn_agent(config, tmp_path / f"{device}.log")
            await _check_stored_exactly_once(conn, devices, agents, sims, tmp_path)
            await _check_the_api(cloud, vehicle_ids)
        finally:
            for agent in agents.values():
                stop_agent(agent)
            for sim in sims:
                sim.stop()


async def _check_stored_exactly_once(
    conn: asyncpg.Connection,
    devices: list[str],
    agents: dict[str, subprocess.Popen[bytes]],
    sims: list[SimulatedVehicle],
    tmp_path: Path,
) -> None:
    """Through a crash and restart of one agent and the end of the drive, every seq each
    agent produced is stored once, with all its samples."""

    async def each_has(n: int) -> bool:
        return all([len(await _stored_seqs(conn, d)) >= n for d in devices])

    await eventually(lambda: each_has(5), 60, "5 batches per device")

    # A crash mid-stream: the restarted agent resumes from its outbox and its seq.
    agents[devices[0]].kill()
    agents[devices[0]].wait()
    agents[devices[0]] = spawn_agent(
        tmp_path / f"{devices[0]}.toml", tmp_path / f"{devices[0]}.log"
    )
    before = len(await _stored_seqs(conn, devices[0]))
    await eventually(lambda: each_has(before + 5), 60, "batches after the restart")

    # Ignition off for good: the pty vanishes, the agents drain their outboxes, then stop.
    for sim in sims:
        sim.stop()

    def drained(device: str) -> bool:
        with Outbox(tmp_path / f"{device}.sqlite3") as outbox:
            return len(outbox) == 0

    async def all_drained() -> bool:
        return all(drained(d) for d in devices)

    await asyncio.sleep(1.0)
    await eventually(all_drained, 60, "the outboxes to drain")
    for agent in agents.values():
        agent.send_signal(signal.SIGTERM)
    for agent in agents.values():
        assert agent.wait(timeout=30) == 0

    for device in devices:
        with Outbox(tmp_path / f"{device}.sqlite3") as outbox:
            produced = list(range(1, outbox.next_seq))
            assert len(outbox) == 0
        stored = await _stored_seqs(conn, device)
        assert stored == produced, f"{device}: stored seqs differ from produced seqs"
        rows = await conn.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device)
        declared = await conn.fetchval(
            "SELECT sum(sample_count) FROM ingested_batches "
            "WHERE device_id = $1 AND kind = 'telemetry'",
            device,
        )
        assert rows == declared > 0
        events = await conn.fetchval(
            "SELECT sum(sample_count) FROM ingested_batches "
            "WHERE device_id = $1 AND kind = 'events'",
            device,
        )
        assert events >= 1  # vehicle_identified at each start, at least


async def _check_the_api(cloud: EndToEndCloud, vehicle_ids: dict[str, uuid.UUID]) -> None:
    """The API lists both vehicles, their latest signals and the full RPM series."""
    conn, api = cloud.conn, cloud.api
    token = await cloud.viewer_token()
    async with aiohttp.ClientSession(headers=bearer(token)) as http:
        async with http.get(f"{api}/vehicles") as resp:
            assert resp.status == 200
            listed = await resp.json()
        items = listed["items"] if isinstance(listed, dict) else listed
        assert {str(v) for v in vehicle_ids.values()} == {item["id"] for item in items}
        for device, vehicle_id in vehicle_ids.items():
            async with http.get(f"{api}/vehicles/{vehicle_id}/signals/latest") as resp:
                assert resp.status == 200
                latest = await resp.json()
            names = {s["name"] for s in latest["signals"]}
            assert {"Vehicle.Speed", "Vehicle.Powertrain.CombustionEngine.Speed"} <= names
            rpm_rows = await conn.fetchval(
                "SELECT count(*) FROM samples WHERE device_id = $1 AND signal_id = 12", device
            )
            async with http.get(
                f"{api}/vehicles/{vehicle_id}/signals/Vehicle.Powertrain.CombustionEngine.Speed"
                "/series",
                params={
                    "from": "2000-01-01T00:00:00Z",
                    "to": "2100-01-01T00:00:00Z",
                    "bucket": "3600s",
                },
            ) as resp:
                assert resp.status == 200, await resp.text()
                series = await resp.json()
            assert sum(b["count"] for b in series["buckets"]) == rpm_rows > 0
