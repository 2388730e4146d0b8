"""`fleetlink edge profile suggest` against the simulated vehicle on a pty, and from the
record the agent kept."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetlink.edge.cli import app
from fleetlink.edge.config import ObdSection
from fleetlink.edge.sources.obd_source import ObdSource
from fleetlink.firmware_profiles import load_profile
from fleetlink.firmware_profiles.matching import best_profile, identify
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.waiting import wait_until

runner = CliRunner()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedVehicle]:
    with SimulatedVehicle(seed=4, latency_s=0.005) as vehicle:
        yield vehicle


def test_suggest_writes_a_profile_that_loads_and_fits_the_vehicle_best(
    sim: SimulatedVehicle, tmp_path: Path
) -> None:
    out = tmp_path / "suggested.toml"
    args = ["profile", "suggest", "--port", str(sim.port), "--baudrate", "38400"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"profile for VIN {sim.vin}" in result.output
    profile = load_profile(out)
    assert profile.match.wmi == [sim.vin[:3]] and profile.match.protocols == ["6"]
    assert profile.obd.adapter.protocol == "6"
    rates = {p.command: (p.rate_hz, p.priority) for p in profile.obd.schedule()}
    assert rates["RPM"] == (5.0, "high") and rates["COOLANT_TEMP"] == (0.2, "low")
    assert {"SPEED", "FUEL_LEVEL", "MAF"} <= set(rates)
    # for this vehicle it is a better fit than the fallback
    chosen = best_profile([load_profile("generic-obd2"), profile], identify(sim.vin, "6"))
    assert chosen is not None and chosen.id == profile.id


def test_suggest_from_the_agents_record(sim: SimulatedVehicle, tmp_path: Path) -> None:
    record = tmp_path / "vehicle.sqlite"
    settings = ObdSection(port=str(sim.port), baudrate=38400, timeout_s=0.3, battery_rate_hz=0)
    source = ObdSource(settings, capabilities_path=record)
    source.start(queue.Queue())
    try:
        wait_until(lambda: source.capabilities is not None)
    finally:
        source.stop()
    result = runner.invoke(app, ["profile", "suggest", "--record", str(record), "--id", "van-x"])
    assert result.exit_code == 0, result.output
    assert 'id = "van-x"' in result.output and f'wmi = ["{sim.vin[:3]}"]' in result.output


def test_suggest_names_what_is_missing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profile", "suggest"])
    assert result.exit_code == 2 and "either --port or --record" in result.output
    result = runner.invoke(app, ["profile", "suggest", "--record", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_suggest_says_so_when_the_ignition_is_off(tmp_path: Path) -> None:
    with SimulatedVehicle(seed=9, latency_s=0.005, ignition_on=False) as off:
        result = runner.invoke(
            app, ["profile", "suggest", "--port", str(off.port), "--baudrate", "38400"]
        )
    assert result.exit_code == 1 and "no vehicle does" in result.output
