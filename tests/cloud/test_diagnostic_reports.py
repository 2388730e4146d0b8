"""``fleetlink diag report`` from the simulated car to the real cloud: the report is saved as
JSON and HTML, attached to the vehicle with its VIN, listed in the vehicle's diagnostic history,
readable whole, and invisible to other tenants; roles without the permission are refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from typer.testing import CliRunner

from fleetlink.cloud.app import create_app
from fleetlink.edge.diag import app as diag_app
from fleetlink.edge.diag.errors import ExitCode
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.vehicle import Vehicle
from tests.conftest import free_port

from .conftest import bearer, ingest_settings, make_fleet, member_token

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_report_reaches_the_vehicles_diagnostic_history(
    migrated_db: str, mqtt_broker, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    fleet = await make_fleet(pool, devices=0)
    other = await make_fleet(pool, devices=0)
    owner = await member_token(pool, fleet.tenant, "owner")
    technician = await member_token(pool, fleet.tenant, "technician")
    viewer = await member_token(pool, fleet.tenant, "viewer")
    outsider = await member_token(pool, other.tenant, "owner")
    port = free_port()
    settings = ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0, http_port=port)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    sim = SimulatedVehicle(seed=7, latency_s=0.0, vehicle=Vehicle(7, pending_dtcs=()))
    sim.vehicle.add_dtc("P0301")
    sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            created = await http.post(
                f"{url}/api/v1/vehicles", json={"vin": sim.vin}, headers=bearer(owner)
            )
            assert created.status == 201, await created.text()
            vehicle_id = (await created.json())["id"]

            def report(token: str, name: str) -> object:
                return CliRunner().invoke(
                    diag_app,
                    ["report", "--port", str(sim.port), "-o", str(tmp_path / name), "--json"],
                    env={"FLEETLINK_API_URL": url, "FLEETLINK_API_TOKEN": token},
                )

            result = await asyncio.to_thread(report, technician, "car")
            assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
            out = json.loads(result.stdout)  # type: ignore[attr-defined]
            assert out["json"] == str(tmp_path / "car.json") and out["vin"] == sim.vin
            assert out["codes"] == ["P0301"]
            assert out["uploaded"]["vehicle_id"] == vehicle_id
            saved = json.loads((tmp_path / "car.json").read_text())
            assert saved["format"] == "fleetlink-diagnostic-report/1"
            assert saved["freeze_frame"]["dtc"]["code"] == "P0301"
            assert saved["monitors"]["ignition"] == "spark"
            assert {v["command"] for v in saved["live"]} >= {"RPM", "SPEED"}
            assert "Cylinder 1 Misfire Detected" in (tmp_path / "car.html").read_text()

            history = await http.get(
                f"{url}/api/v1/vehicles/{vehicle_id}/diagnostic-reports", headers=bearer(viewer)
            )
            items = (await history.json())["items"]
            assert [(i["id"], i["codes"], i["mil_on"]) for i in items] == [
                (out["uploaded"]["id"], ["P0301"], True)
            ]
            one = await http.get(
                f"{url}/api/v1/diagnostic-reports/{items[0]['id']}", headers=bearer(viewer)
            )
            assert (await one.json())["report"]["vin"] == sim.vin

            hidden = await http.get(
                f"{url}/api/v1/diagnostic-reports/{items[0]['id']}", headers=bearer(outsider)
            )
            assert hidden.status == 404
            theirs = await http.get(
                f"{url}/api/v1/vehicles/{vehicle_id}/diagnostic-reports", headers=bearer(outsider)
            )
            assert theirs.status == 404

            refused = await asyncio.to_thread(report, viewer, "viewer")
            assert refused.exit_code == ExitCode.UPLOAD_FAILED  # type: ignore[attr-defined]
            assert "403" in refused.stderr and (tmp_path / "viewer.json").exists()  # type: ignore[attr-defined]
            unknown = await asyncio.to_thread(report, outsider, "outsider")
            assert unknown.exit_code == ExitCode.UPLOAD_FAILED  # type: ignore[attr-defined]
            assert "no vehicle with VIN" in unknown.stderr  # type: ignore[attr-defined]
    finally:
        sim.stop()
        await runner.cleanup()
