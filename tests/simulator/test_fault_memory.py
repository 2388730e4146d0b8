"""The simulated ECU's fault memory: freeze frame (mode 02), readiness bytes (PID 01 and 41),
what mode 04 resets, scenario files, and the code ranges diag names."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetlink.edge.diag.dtc_meaning import code_range
from fleetlink.simulator.cli import app as sim_app
from fleetlink.simulator.dtcs import ScenarioError, encode_mode_02, load_scenario
from fleetlink.simulator.readiness import encode_monitor_status, encode_monitor_status_this_cycle
from fleetlink.simulator.vehicle import Vehicle


def _idling() -> Vehicle:
    vehicle = Vehicle(seed=1, pending_dtcs=())
    vehicle.set_ignition(True)
    for _ in range(20):
        vehicle.step(0.1)
    return vehicle


def test_the_first_stored_code_freezes_the_frame_and_later_codes_keep_it() -> None:
    vehicle = _idling()
    vehicle.add_dtc("P0301")
    rpm_then = vehicle.snapshot().rpm
    for _ in range(30):
        vehicle.step(0.1)
    vehicle.add_dtc("P0420")
    state = vehicle.snapshot()
    assert state.freeze_frame_dtc == "P0301"
    assert encode_mode_02(bytes((0x02, 0x00)), state) == bytes.fromhex("4202000301")
    rpm = encode_mode_02(bytes((0x0C, 0x00)), state)
    assert rpm is not None and rpm[:3] == bytes.fromhex("420C00")
    assert int.from_bytes(rpm[3:5], "big") == round(rpm_then * 4)
    assert encode_mode_02(bytes((0x0C, 0x01)), state) is None  # only frame 0 exists


def test_readiness_bytes_and_what_a_clear_resets() -> None:
    vehicle = _idling()
    vehicle.add_dtc("P0420")
    status = encode_monitor_status(vehicle.snapshot())
    assert status == bytes((0x81, 0x07, 0xE5, 0x00))
    vehicle.clear_dtcs()
    cleared = vehicle.snapshot()
    assert encode_monitor_status(cleared) == bytes((0x00, 0x07, 0xE5, 0xE5))
    assert cleared.freeze_frame is None and cleared.permanent_dtcs == ("P0420",)
    assert encode_mode_02(bytes((0x02, 0x00)), cleared) == bytes.fromhex("4202000000")
    assert encode_monitor_status_this_cycle(cleared)[0] == 0x00


def test_a_scenario_file_is_read_and_a_bad_one_named(tmp_path: Path) -> None:
    good = tmp_path / "faults.toml"
    good.write_text(
        '[dtcs]\nstored = ["p0301"]\npending = ["P0171"]\n[monitors]\nincomplete = ["catalyst"]\n'
    )
    scenario = load_scenario(good)
    assert scenario.stored == ("P0301",) and scenario.pending == ("P0171",)
    assert scenario.incomplete_monitors == ("catalyst",)
    bad = tmp_path / "bad.toml"
    bad.write_text('[dtcs]\nstored = ["X0301"]\n')
    with pytest.raises(ScenarioError, match=r"dtcs\.stored"):
        load_scenario(bad)
    bad.write_text('[monitors]\nincomplete = ["warp_drive"]\n')
    with pytest.raises(ScenarioError, match="warp_drive"):
        load_scenario(bad)
    result = CliRunner().invoke(sim_app, ["run", "--scenario", str(bad)])
    assert result.exit_code == 2 and "warp_drive" in result.stderr
    result = CliRunner().invoke(sim_app, ["run", "--dtc", "P0301,Q1"])
    assert result.exit_code == 2 and "--dtc Q1" in result.stderr


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("P0301", "generic"),
        ("P2096", "generic"),
        ("P3400", "generic"),
        ("P1234", "manufacturer-specific"),
        ("P3000", "manufacturer-specific"),
        ("C1234", "manufacturer-specific"),
        ("U0100", "generic"),
        ("B3000", "reserved"),
    ],
)
def test_sae_j2012_ranges(code: str, expected: str) -> None:
    assert code_range(code) == expected
