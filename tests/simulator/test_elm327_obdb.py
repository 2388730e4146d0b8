"""The ELM327 emulator answers an OBDb signalset's mode 22 commands on the addressed ECU only."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlink.firmware_profiles.obdb import VehicleSignals, decode_reply
from fleetlink.simulator.elm327_interpreter import Elm327Interpreter
from fleetlink.simulator.obdb_ecus import ObdbEcus, TractionBattery
from fleetlink.simulator.vehicle import Vehicle
from tests.field_data import field_data

FIELD = field_data("obdb")
pytestmark = pytest.mark.skipif(
    not FIELD.is_dir(), reason=f"OBDb field data not present at {FIELD}"
)
FILES = [
    FIELD / name / "signalsets" / "v3" / "default.json"
    for name in ("Chevrolet-Bolt-EV", "Chevrolet")
]


def _elm(vehicle: Vehicle, battery: TractionBattery | None = None) -> Elm327Interpreter:
    elm = Elm327Interpreter(vehicle, ObdbEcus.from_files(FILES, 2019, battery))
    for command in ("ATE0", "ATH1", "ATSP0", "0100"):
        elm.handle(command.encode())
    return elm


def _ask(elm: Elm327Interpreter, *commands: str) -> str:
    text = ""
    for command in commands:
        text = elm.handle(command.encode()).data.decode().rstrip(">").strip()
    return text


@pytest.fixture
def vehicle() -> Vehicle:
    car = Vehicle(seed=2)
    car.set_ignition(True)
    return car


@pytest.fixture
def signals() -> VehicleSignals:
    return VehicleSignals.from_files(FILES, 2019)


def test_answers_on_the_commands_header_with_the_encoded_value(
    vehicle: Vehicle, signals: VehicleSignals
) -> None:
    elm = _elm(vehicle)
    reply = _ask(elm, "ATSH7E4", "ATCRA7EC", "2243AF")
    assert reply.startswith("7EC 05 62 43 AF")
    soc = decode_reply(signals, reply).values["BOLT_HVBAT_SOC_RAW"]
    assert soc == pytest.approx(90.0, abs=0.01)


def test_an_unknown_did_on_a_known_ecu_is_a_negative_response(vehicle: Vehicle) -> None:
    elm = _elm(vehicle)
    assert _ask(elm, "ATSH7E4", "22FFFF") == "7EC 03 7F 22 31 00 00 00 00"


def test_other_headers_and_the_receive_filter_get_no_answer(vehicle: Vehicle) -> None:
    elm = _elm(vehicle)
    assert _ask(elm, "ATSH7E5", "2243AF") == "NO DATA"  # no ECU there
    assert _ask(elm, "ATSH7E7", "2243AF").startswith("7EF 03 7F 22 31")  # not its DID
    assert _ask(elm, "ATSH7E4", "ATCRA7E8", "2243AF") == "NO DATA"  # filtered out
    assert _ask(elm, "ATAR", "2243AF").startswith("7EC")


def test_29_bit_ecus_answer_on_the_29_bit_protocol_in_several_frames(
    vehicle: Vehicle, signals: VehicleSignals
) -> None:
    elm = _elm(vehicle)
    assert _ask(elm, "ATCP18", "ATSHDACBF1", "222AF5") == "NO DATA"  # still on 11-bit
    reply = _ask(elm, "ATSP7", "ATCRA18DAF1CB", "222AF5")
    lines = reply.splitlines()
    assert [ln[:14] for ln in lines] == ["18 DA F1 CB 10", "18 DA F1 CB 21"]
    values = decode_reply(signals, reply).values
    assert values["CHEVROLET_HVBAT_C_V_MIN"] == pytest.approx(3.75)
    odometer = decode_reply(signals, _ask(elm, "ATSHDA1AF1", "ATCRA18DAF11A", "22448F"))
    assert odometer.values["CHEVROLET_ODO"] == pytest.approx(
        vehicle.snapshot().odometer_km, abs=0.02
    )
    assert _ask(elm, "ATSP6", "ATSH7DF", "ATAR", "010D").startswith("7E8 03 41 0D")


def test_state_of_charge_falls_as_the_vehicle_drives(
    vehicle: Vehicle, signals: VehicleSignals
) -> None:
    elm = _elm(vehicle, TractionBattery(pct_per_km=2.0))
    _ask(elm, "ATSH7E4", "ATCRA7EC")
    before = decode_reply(signals, _ask(elm, "2243AF")).values["BOLT_HVBAT_SOC_RAW"]
    start_km = vehicle.snapshot().odometer_km
    vehicle.set_pedals(60.0, 0.0)
    while vehicle.snapshot().odometer_km < start_km + 1.0:
        vehicle.step(0.5)
    after = decode_reply(signals, _ask(elm, "2243AF")).values["BOLT_HVBAT_SOC_RAW"]
    assert isinstance(before, float) and isinstance(after, float)
    assert before - after == pytest.approx(
        2.0 * (vehicle.snapshot().odometer_km - start_km), abs=0.05
    )


def test_sim_run_refuses_a_file_that_is_not_a_signalset(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fleetlink.simulator.cli import app as sim_app

    bad = tmp_path / "bad.json"
    bad.write_text('{"signals": []}')
    result = CliRunner().invoke(sim_app, ["run", "--signalset", str(bad)])
    assert result.exit_code == 2 and "not an OBDb v3 signalset" in result.stderr
