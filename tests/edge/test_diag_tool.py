"""The technician's scan tool against the simulator's ELM327 on a pseudo-terminal: every
command's ``--json`` field by field, its tables against golden files, and each bad situation
as one line and its exit code."""

from __future__ import annotations

import csv
import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from typer.testing import CliRunner

from fleetlink.edge.diag import app
from fleetlink.edge.diag.errors import ExitCode
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.vehicle import Vehicle

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden"
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


def _car(**quirks: object) -> SimulatedVehicle:
    sim = SimulatedVehicle(seed=7, latency_s=0.0, vehicle=Vehicle(7, pending_dtcs=("P0171",)))
    sim.vehicle.add_dtc("P0301")
    sim.vehicle.add_dtc("P0420")
    sim.vehicle.add_dtc("P1234", permanent_only=True)
    for name, value in quirks.items():
        setattr(sim.elm327.quirks, name, value)
    sim.start()
    return sim


@pytest.fixture
def car() -> Iterator[SimulatedVehicle]:
    sim = _car()
    yield sim
    sim.stop()


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={**ENV, **(env or {})}, input=input)


def as_json(*args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    result = invoke(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/edge/golden/``name``; FLEETLINK_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("FLEETLINK_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_scan_reads_adapter_protocol_battery_ecus_vin_and_pids(car: SimulatedVehicle) -> None:
    data = as_json("scan", "--port", str(car.port))
    assert data["port"] == car.port and data["baudrate"] == 38400
    assert data["adapter"] == {"version": "ELM327 v1.5", "refused_settings": []}
    assert data["protocol"] == {"id": "6", "name": "ISO 15765-4 (CAN 11/500)", "search": "ATSP0"}
    assert data["battery"]["unit"] == "V" and 11 < data["battery"]["value"] < 15
    assert data["ecus"] == [{"id": "7E8", "name": "engine"}]
    assert data["vin"] == car.vin == "ZFA346P374T225127"
    assert data["vehicle"] == {
        "wmi": "ZFA",
        "make": "Fiat Automobiles",
        "model": None,
        "model_year": 2004,
        "country": "Italy",
    }
    assert {"0C", "0D", "41"} <= set(data["supported_pids"]) and "00" not in data["supported_pids"]
    assert data["tried"] == [
        {
            "port": car.port,
            "baudrates": [38400, 9600, 115200, 57600, 19200, 230400],
            "result": "adapter",
        }
    ]
    assert as_json("info", "--port", str(car.port))["vin"] == car.vin


def test_scan_without_a_port_tries_each_candidate_and_lists_them(
    car: SimulatedVehicle, tmp_path: Path
) -> None:
    link = tmp_path / "ttyOBD"
    link.symlink_to(str(car.port))
    ports = f"{tmp_path / 'missing'}:{link}"
    data = as_json("scan", env={"FLEETLINK_DIAG_PORTS": ports})
    assert [(a["port"], a["result"]) for a in data["tried"]] == [
        (str(tmp_path / "missing"), "no ELM327 answers"),
        (str(link), "adapter"),
    ]
    assert data["vin"] == car.vin


def test_dtc_lists_stored_pending_and_permanent_codes_with_meanings(car: SimulatedVehicle) -> None:
    data = as_json("dtc", "--port", str(car.port))
    assert data["mil_on"] is True and data["stored_count_reported"] == 2
    assert [(c["code"], c["status"]) for c in data["codes"]] == [
        ("P0301", "stored"),
        ("P0420", "stored"),
        ("P0171", "pending"),
        ("P0301", "permanent"),
        ("P0420", "permanent"),
        ("P1234", "permanent"),
    ]
    assert data["codes"][0] == {
        "code": "P0301",
        "status": "stored",
        "description": "Cylinder 1 Misfire Detected",
        "system": "powertrain",
        "range": "generic",
    }
    assert data["codes"][-1]["range"] == "manufacturer-specific"
    assert data["unsupported"] == [] and data["warnings"] == []


def test_tables_match_their_golden_files(car: SimulatedVehicle) -> None:
    for command, name in (
        ("dtc", "dtc.txt"),
        ("freeze-frame", "freeze_frame.txt"),
        ("pids", "pids.txt"),
    ):
        result = invoke(command, "--port", str(car.port))
        assert result.exit_code == 0, result.output
        golden(name, result.stdout)


def test_freeze_frame_is_the_state_when_the_first_code_was_stored(car: SimulatedVehicle) -> None:
    data = as_json("freeze-frame", "--port", str(car.port))
    assert data["dtc"]["code"] == "P0301"
    values = {v["name"]: v for v in data["values"]}
    frame = car.vehicle.snapshot().freeze_frame
    assert frame is not None
    assert values["RPM"] == {
        "pid": "0C",
        "name": "RPM",
        "description": "Engine RPM",
        "value": 0.0,
        "unit": "rpm",
    }
    assert values["COOLANT_TEMP"]["value"] == round(frame.coolant_temp_c)
    assert values["COOLANT_TEMP"]["unit"] == "celsius"


def test_monitors_report_since_clear_and_this_cycle(car: SimulatedVehicle) -> None:
    data = as_json("monitors", "--port", str(car.port))
    assert data["ignition"] == "spark" and data["mil_on"] is True and data["dtc_count"] == 2
    since = {m["name"]: m["status"] for m in data["since_clear"]}
    assert since["misfire"] == "complete" and since["catalyst"] == "complete"
    assert since["heated_catalyst"] == "not supported"
    cycle = {m["name"]: m["status"] for m in data["this_cycle"]}
    assert cycle["catalyst"] == "incomplete" and cycle["misfire"] == "complete"


def test_clear_asks_warns_and_resets_codes_freeze_frame_and_monitors(
    car: SimulatedVehicle,
) -> None:
    refused = invoke("dtc", "clear", "--port", str(car.port), input="n\n")
    assert refused.exit_code == 1 and "monitor" in refused.stderr
    assert car.vehicle.snapshot().stored_dtcs == ("P0301", "P0420")
    data = as_json("dtc", "clear", "--port", str(car.port), "--yes")
    assert data["cleared"] is True and data["monitors_reset"] is True
    assert [c["code"] for c in data["codes_before"] if c["status"] == "stored"] == [
        "P0301",
        "P0420",
    ]
    assert {c["status"] for c in data["codes_after"]} == {"permanent"}
    assert as_json("freeze-frame", "--port", str(car.port))["dtc"] is None
    since = {
        m["name"]: m["status"] for m in as_json("monitors", "--port", str(car.port))["since_clear"]
    }
    assert since["catalyst"] == "incomplete" and since["misfire"] == "complete"


def test_live_reads_named_signals_and_records_csv_and_jsonl(
    car: SimulatedVehicle, tmp_path: Path
) -> None:
    data = as_json("live", "RPM", "0D", "Vehicle.Speed", "--port", str(car.port), "-n", "2")
    assert data["passes"] == 1 or data["passes"] == 2
    assert [(s["command"], s["unit"]) for s in data["signals"]] == [
        ("RPM", "rpm"),
        ("SPEED", "km/h"),
    ]
    assert data["rate_hz"] > 0
    for suffix in ("csv", "jsonl"):
        path = tmp_path / f"live.{suffix}"
        result = invoke("live", "RPM", "--port", str(car.port), "-n", "3", "--record", str(path))
        assert result.exit_code == 0, result.output
        assert "Live values" in result.stdout and "rpm" in result.stdout
        if suffix == "csv":
            rows = list(csv.DictReader(path.open()))
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 3 and {r["command"] for r in rows} == {"RPM"}
        assert float(rows[0]["value"]) >= 0 and rows[0]["unit"] == "rpm"


def test_pids_name_units_and_catalog_signals(car: SimulatedVehicle) -> None:
    pids = {p["pid"]: p for p in as_json("pids", "--port", str(car.port))["pids"]}
    assert pids["0D"] == {
        "pid": "0D",
        "name": "SPEED",
        "description": "Vehicle Speed",
        "unit": "km/h",
        "signal": "Vehicle.Speed",
    }
    assert pids["01"]["signal"] is None


def test_a_clone_answering_question_marks_to_echo_and_linefeed_settings_still_works() -> None:
    sim = _car(rejected_at=frozenset({"E0", "L0"}))
    try:
        data = as_json("scan", "--port", str(sim.port))
        assert data["adapter"]["refused_settings"] == ["ATE0", "ATL0"]
        assert data["vin"] == sim.vin
        codes = as_json("dtc", "--port", str(sim.port))
        assert [c["code"] for c in codes["codes"]][:2] == ["P0301", "P0420"]
    finally:
        sim.stop()


def test_a_long_code_list_spans_frames_and_is_read_whole() -> None:
    sim = SimulatedVehicle(seed=3, latency_s=0.0, vehicle=Vehicle(3, pending_dtcs=()))
    codes = [f"P03{n:02d}" for n in range(1, 9)]
    for code in codes:
        sim.vehicle.add_dtc(code)
    sim.start()
    try:
        data = as_json("dtc", "--port", str(sim.port))
        assert [c["code"] for c in data["codes"] if c["status"] == "stored"] == codes
    finally:
        sim.stop()


# ------------------------------------------------------------------ bad situations


def _error(result, code: ExitCode) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return str(lines[0])


def test_no_adapter_found_lists_what_was_tried(tmp_path: Path) -> None:
    master, follower = pty.openpty()
    try:
        silent = os.ttyname(follower)
        result = invoke("scan", env={"FLEETLINK_DIAG_PORTS": f"{silent}:{tmp_path}/nothing"})
        line = _error(result, ExitCode.NO_ADAPTER)
        assert f"{silent} (no ELM327 answers)" in line and "38400, 9600" in line
        assert "--port" in line
    finally:
        os.close(master)
        os.close(follower)


def test_a_busy_port_is_named(car: SimulatedVehicle) -> None:
    held = serial.Serial(str(car.port), exclusive=True)
    try:
        line = _error(invoke("scan", "--port", str(car.port)), ExitCode.PORT_UNAVAILABLE)
        assert "busy" in line
    finally:
        held.close()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_permission_denied_names_the_group_to_join(car: SimulatedVehicle) -> None:
    device = os.path.realpath(str(car.port))
    os.chmod(device, 0o660)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom fleetlink.edge.diag import app\n"
        f"r = CliRunner().invoke(app, ['scan', '--port', {device!r}])\n"
        "sys.stderr.write(r.stderr); sys.exit(r.exit_code)\n"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": "/tmp"},
        timeout=60,
    )
    if "ModuleNotFoundError" in done.stderr or "Permission denied: '" in done.stderr:
        pytest.skip("the checkout is not readable by an unprivileged user here")
    assert done.returncode == ExitCode.PORT_UNAVAILABLE, done.stderr
    assert "permission denied" in done.stderr and "usermod -aG" in done.stderr


def test_a_silent_vehicle_gets_an_ignition_hint() -> None:
    with SimulatedVehicle(seed=1, latency_s=0.0, ignition_on=False) as sim:
        line = _error(invoke("dtc", "--port", str(sim.port)), ExitCode.VEHICLE_SILENT)
        assert "ignition" in line and "ELM327 v1.5" in line


def test_an_unsupported_pid_and_an_unknown_name_are_refused(car: SimulatedVehicle) -> None:
    line = _error(invoke("live", "0x5F", "--port", str(car.port)), ExitCode.UNSUPPORTED)
    assert "does not support" in line
    line = _error(invoke("live", "Vehicle.Nope", "--port", str(car.port)), ExitCode.USAGE)
    assert "not a mode 01 PID" in line
