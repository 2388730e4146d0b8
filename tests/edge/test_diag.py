"""``fleetlink diag`` against the simulator's ELM327 on a pseudo-terminal."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from fleetlink.edge.diag import app
from fleetlink.simulator.fleet import SimulatedVehicle

runner = CliRunner()


@pytest.fixture(scope="module")
def car() -> Iterator[SimulatedVehicle]:
    sim = SimulatedVehicle(seed=7, latency_s=0.0)
    sim.vehicle.add_dtc("P0301")
    sim.start()
    yield sim
    sim.stop()


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_info_reads_the_vin_voltage_and_supported_pids(car: SimulatedVehicle) -> None:
    info = _json("info", "--port", str(car.port))
    assert info["vin"] == car.vin
    assert 11 < info["battery_v"] < 15
    assert info["supported_mode01_pids"] >= 30


def test_dtc_lists_stored_codes_with_descriptions(car: SimulatedVehicle) -> None:
    codes = _json("dtc", "--port", str(car.port))
    assert any(line.startswith("P0301") and "Misfire" in line for line in codes["stored"])


def test_live_reads_catalog_signals_with_units(car: SimulatedVehicle) -> None:
    readings = _json("live", "--port", str(car.port))
    assert readings["Vehicle.Speed"].endswith(" km/h")
    assert readings["Vehicle.Powertrain.CombustionEngine.Speed"].endswith(" rpm")


def test_a_port_without_an_adapter_is_a_clear_error() -> None:
    result = runner.invoke(app, ["info", "--port", "/dev/does-not-exist"])
    assert result.exit_code == 1
    assert "no ELM327 adapter answers on /dev/does-not-exist" in result.output
