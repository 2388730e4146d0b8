"""``fleetlink diag`` against the simulator's ELM327 on a pseudo-terminal and the independent
ELM327-emulator: data-only JSON, checked clears and code counts, bounded failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetlink.edge.diag import app
from fleetlink.edge.diag.errors import ExitCode
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.waiting import wait_until

runner = CliRunner()
RATES = ("38400", "9600", "115200", "57600", "19200", "230400")


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
    return json.loads(result.stdout)


def test_info_reads_the_vin_voltage_and_supported_pids(car: SimulatedVehicle) -> None:
    info = _json("info", "--port", str(car.port))
    assert info["vin"] == car.vin
    assert info["battery"]["unit"] == "V" and 11 < info["battery"]["value"] < 15
    assert len(info["supported_pids"]) >= 30
    assert info["protocol"] == {
        "id": "6",
        "name": "ISO 15765-4 (CAN 11/500)",
        "search": "ATSP0",
    }
    assert info["baudrate"] == 38400 and info["adapter"]["version"] == "ELM327 v1.5"


def test_dtc_lists_codes_as_objects_with_descriptions(car: SimulatedVehicle) -> None:
    codes = _json("dtc", "--port", str(car.port))
    assert codes["codes"][:1] == [
        {
            "code": "P0301",
            "status": "stored",
            "description": "Cylinder 1 Misfire Detected",
            "system": "powertrain",
            "range": "generic",
        }
    ]
    assert codes["stored_count_reported"] == 1 and codes["mil_on"] is True
    assert codes["warnings"] == [] and codes["unsupported"] == []


def test_live_reads_catalog_signals_as_numbers_with_units(car: SimulatedVehicle) -> None:
    readings = {r["name"]: r for r in _json("live", "--port", str(car.port))["signals"]}
    speed = readings["Vehicle.Speed"]
    assert speed["unit"] == "km/h" and isinstance(speed["value"], float)
    assert readings["Vehicle.Powertrain.CombustionEngine.Speed"]["unit"] == "rpm"
    assert readings["Vehicle.Powertrain.CombustionEngine.Speed"]["command"] == "RPM"


def test_every_command_takes_a_baudrate(car: SimulatedVehicle) -> None:
    for command in ("info", "dtc", "live"):
        result = runner.invoke(app, [command, "--port", str(car.port), "--baudrate", "38400"])
        assert result.exit_code == 0, result.output


def test_an_adapter_at_another_rate_is_found_and_a_wrong_rate_is_named() -> None:
    with SimulatedVehicle(seed=2, latency_s=0.0, baudrate=115200) as sim:
        assert _json("info", "--port", str(sim.port))["baudrate"] == 115200
        result = runner.invoke(app, ["info", "--port", str(sim.port), "--baudrate", "9600"])
    assert result.exit_code == ExitCode.NO_ADAPTER
    assert "sent ATI at 9600 baud" in result.stderr


def test_a_port_without_an_adapter_is_a_clear_error() -> None:
    result = runner.invoke(app, ["info", "--port", "/dev/does-not-exist"])
    assert result.exit_code == ExitCode.NO_ADAPTER
    assert "no such port: /dev/does-not-exist" in result.stderr
    assert result.stdout == ""


def test_a_silent_port_gives_up_within_10_s_naming_what_it_tried(tmp_path: Path) -> None:
    with SimulatedVehicle(seed=3, latency_s=0.0) as sim:
        sim.elm327.set_silent(True)
        os.symlink(str(sim.port), tmp_path / "ttyOBD")
        started = time.monotonic()
        result = runner.invoke(app, ["dtc", "--port", str(tmp_path / "ttyOBD"), "--json"])
        elapsed = time.monotonic() - started
    assert result.exit_code == ExitCode.NO_ADAPTER
    assert elapsed < 10, elapsed
    assert f"no ELM327 answers on {tmp_path / 'ttyOBD'} (-> {sim.port})" in result.stderr
    assert all(rate in result.stderr for rate in RATES)
    assert result.stdout == ""


def test_a_device_that_only_echoes_is_not_taken_for_an_elm327() -> None:
    master, slave = os.openpty()
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            try:
                data = os.read(master, 1024)
            except OSError:
                return
            os.write(master, data)

    threading.Thread(target=echo, daemon=True).start()
    started = time.monotonic()
    try:
        result = runner.invoke(app, ["live", "--port", os.ttyname(slave)])
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
    assert result.exit_code == ExitCode.NO_ADAPTER
    assert time.monotonic() - started < 10
    assert "no ELM327 answers" in result.stderr


def test_a_refused_clear_exits_non_zero_and_says_the_ecu_refused() -> None:
    with SimulatedVehicle(seed=5, latency_s=0.0) as sim:
        sim.vehicle.add_dtc("P0420")
        sim.elm327.quirks.refuse_clear = True
        result = runner.invoke(app, ["dtc", "clear", "--port", str(sim.port), "--yes", "--json"])
        assert sim.snapshot().stored_dtcs == ("P0420",)
    assert result.exit_code == ExitCode.FAILED
    assert "error: the ECU refused to clear the trouble codes (7F 04 22" in result.stderr
    assert result.stdout == ""


def test_a_confirmed_clear_exits_zero_with_only_json_on_stdout() -> None:
    with SimulatedVehicle(seed=5, latency_s=0.0) as sim:
        sim.vehicle.add_dtc("P0420")
        # a real process: the test runner would echo the typed answer onto stdout
        command = ["diag", "dtc", "clear", "--port", str(sim.port), "--json"]
        result = subprocess.run(
            [sys.executable, "-m", "fleetlink", *command],
            input="y\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sim.snapshot().stored_dtcs == ()
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cleared"] is True
    assert [c["code"] for c in data["codes_before"] if c["status"] == "stored"] == ["P0420"]
    assert "Clear 1 codes (P0420) and the freeze frame" in result.stderr


def test_a_reply_without_the_count_byte_is_read_as_the_status_count_says() -> None:
    with SimulatedVehicle(seed=6, latency_s=0.0) as sim:
        for code in ("P0143", "P0196", "P0234"):
            sim.vehicle.add_dtc(code)
        sim.elm327.quirks.omit_dtc_count = True
        data = _json("dtc", "--port", str(sim.port))
        text = runner.invoke(app, ["dtc", "--port", str(sim.port)])
    assert [c["code"] for c in data["codes"] if c["status"] == "stored"] == [
        "P0143",
        "P0196",
        "P0234",
    ]
    assert data["stored_count_reported"] == 3
    assert any("no ISO 15765-4 count byte" in w for w in data["warnings"])
    assert "C0301" not in text.stdout and "P0143" in text.stdout
    assert "warning: the adapter's reply has no ISO 15765-4 count byte" in text.stderr


elm = pytest.importorskip("elm", reason="the ELM327-emulator package is not installed")


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(elm.elm, "setup_logging", lambda *args, **kwargs: None)
    emulator = elm.Elm()
    emulator.set_sorted_obd_msg("car")
    emulator.__enter__()
    wait_until(lambda: bool(emulator.get_pty()), 5)
    yield str(emulator.get_pty())
    emulator.terminate()


def test_diag_reads_the_independent_emulator(peer: str) -> None:
    info = _json("info", "--port", peer)
    assert info["protocol"]["id"] == "6" and info["battery"]["unit"] == "V"
    readings = {r["command"]: r for r in _json("live", "--port", peer)["signals"]}
    assert 0 <= readings["SPEED"]["value"] <= 255 and readings["SPEED"]["unit"] == "km/h"
    dtcs = _json("dtc", "--port", peer)
    assert all(
        set(c) == {"code", "description", "status", "system", "range"} for c in dtcs["codes"]
    )
    assert dtcs["warnings"] == []
