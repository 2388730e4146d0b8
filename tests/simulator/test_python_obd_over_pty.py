"""python-obd, unmodified, connects to the emulator over a pseudo-terminal and reads the model."""

from __future__ import annotations

import math
from collections.abc import Iterator

import obd
import pytest
from obd import OBDStatus

from fleetlink.simulator.elm327 import Elm327Emulator
from fleetlink.simulator.j1979 import supported_mode_01_pids
from fleetlink.simulator.vehicle import Vehicle

# python-obd 0.7.3 strips the characters "\\", "x", "0", "1", "2" from both ends of a VIN
# (its decoder passes b"\\x00..." to bytes.strip), so this VIN starts and ends with others.
VIN = "WBA3A5C53CF256985"
STORED = ("P0301", "P0420", "C0035", "B1234")


@pytest.fixture(scope="module")
def vehicle() -> Vehicle:
    """A warm vehicle pulling away; nothing steps it during the tests, so values stay put."""
    vehicle = Vehicle(seed=11, vin=VIN, stored_dtcs=STORED, pending_dtcs=("P0171",))
    vehicle.set_ignition(True)
    vehicle.set_pedals(40.0, 0.0)
    for _ in range(150):
        vehicle.step(0.1)
    return vehicle


@pytest.fixture(scope="module")
def connection(vehicle: Vehicle) -> Iterator[obd.OBD]:
    with Elm327Emulator(vehicle, latency_s=0.0) as emulator:
        conn = obd.OBD(emulator.port, fast=False)
        assert conn.status() == OBDStatus.CAR_CONNECTED
        yield conn
        conn.close()


def value(conn: obd.OBD, name: str) -> float:
    response = conn.query(obd.commands[name])
    assert not response.is_null(), f"{name} returned no data"
    return float(response.value.magnitude)


def test_python_obd_connects_on_can_11bit_500k(connection: obd.OBD) -> None:
    assert connection.protocol_id() == "6"
    assert connection.protocol_name() == "ISO 15765-4 (CAN 11/500)"


def test_python_obd_reads_speed_and_rpm_matching_the_model(
    connection: obd.OBD, vehicle: Vehicle
) -> None:
    s = vehicle.snapshot()
    assert s.speed_kmh > 10 and s.rpm > 1000
    assert value(connection, "SPEED") == pytest.approx(s.speed_kmh, abs=0.5)
    assert value(connection, "RPM") == pytest.approx(s.rpm, abs=0.125)


@pytest.mark.parametrize(
    ("command", "field", "resolution"),
    [
        ("COOLANT_TEMP", "coolant_temp_c", 1.0),
        ("INTAKE_TEMP", "intake_temp_c", 1.0),
        ("OIL_TEMP", "oil_temp_c", 1.0),
        ("AMBIANT_AIR_TEMP", "ambient_temp_c", 1.0),
        ("MAF", "maf_gs", 0.01),
        ("ENGINE_LOAD", "engine_load_pct", 100 / 255),
        ("THROTTLE_POS", "throttle_pct", 100 / 255),
        ("FUEL_LEVEL", "fuel_level_pct", 100 / 255),
        ("INTAKE_PRESSURE", "intake_pressure_kpa", 1.0),
        ("BAROMETRIC_PRESSURE", "barometric_pressure_kpa", 1.0),
        ("TIMING_ADVANCE", "timing_advance_deg", 0.5),
        ("FUEL_RATE", "fuel_rate_lph", 0.05),
        ("CONTROL_MODULE_VOLTAGE", "control_module_v", 0.001),
        ("CATALYST_TEMP_B1S1", "catalyst_temp_c", 0.1),
        ("RUN_TIME", "run_time_s", 1.0),
        ("DISTANCE_SINCE_DTC_CLEAR", "distance_since_clear_km", 1.0),
    ],
)
def test_python_obd_reads_each_signal_within_its_resolution(
    connection: obd.OBD, vehicle: Vehicle, command: str, field: str, resolution: float
) -> None:
    expected = getattr(vehicle.snapshot(), field)
    assert value(connection, command) == pytest.approx(expected, abs=resolution / 2 + 1e-6)


def test_every_catalog_pid_is_supported_per_the_bitmaps(connection: obd.OBD) -> None:
    from fleetlink.shared.signals import all_signals

    catalog = {s.obd_command for s in all_signals() if s.obd_command}
    supported = {c.name for c in connection.supported_commands if c.mode == 1}
    assert catalog <= supported


def test_pid_bitmaps_agree_with_what_answers(connection: obd.OBD) -> None:
    supported = {c.pid for c in connection.supported_commands if c.mode == 1}
    assert supported == {p for p in supported_mode_01_pids() if p in obd.commands[1] or p < 0x60}
    for pid in range(0x01, 0x60):
        messages = connection.interface.send_and_parse(f"01{pid:02X}".encode())
        answered = any(m.parsed() for m in messages)
        assert answered == (pid in supported_mode_01_pids()), f"PID {pid:02X}"


@pytest.mark.parametrize(
    "request_pids",
    [
        (0x0C, 0x0D),
        (0x0C, 0x0D, 0x05),
        (0x0C, 0x0D, 0x05, 0x11),
        (0x0C, 0x0D, 0x05, 0x11, 0x10),
        (0x0C, 0x0D, 0x05, 0x11, 0x10, 0x2F),
    ],
)
def test_multi_pid_request_decodes_to_each_value(
    connection: obd.OBD, vehicle: Vehicle, request_pids: tuple[int, ...]
) -> None:
    s = vehicle.snapshot()
    expected = {
        0x0C: (2, lambda d: (d[0] * 256 + d[1]) / 4, s.rpm, 0.125),
        0x0D: (1, lambda d: d[0], s.speed_kmh, 0.5),
        0x05: (1, lambda d: d[0] - 40, s.coolant_temp_c, 0.5),
        0x11: (1, lambda d: d[0] * 100 / 255, s.throttle_pct, 0.2),
        0x10: (2, lambda d: (d[0] * 256 + d[1]) / 100, s.maf_gs, 0.005),
        0x2F: (1, lambda d: d[0] * 100 / 255, s.fuel_level_pct, 0.2),
    }
    request = b"01" + "".join(f"{p:02X}" for p in request_pids).encode()
    messages = [m for m in connection.interface.send_and_parse(request) if m.parsed()]
    assert len(messages) == 1
    data = bytes(messages[0].data)
    assert data[0] == 0x41
    frames = len(messages[0].frames)
    assert frames == (1 if len(data) <= 7 else 1 + math.ceil((len(data) - 6) / 7))
    i = 1
    for pid in request_pids:
        assert data[i] == pid
        size, decode, model, tolerance = expected[pid]
        assert decode(data[i + 1 : i + 1 + size]) == pytest.approx(model, abs=tolerance)
        i += 1 + size
    assert i == len(data)


def test_response_count_suffix_gets_the_same_answer(connection: obd.OBD) -> None:
    plain = connection.interface.send_and_parse(b"010C0D")
    counted = connection.interface.send_and_parse(b"010C0D1")
    assert [bytes(m.data) for m in counted] == [bytes(m.data) for m in plain]


def test_vin_decodes_to_the_models_vin(connection: obd.OBD) -> None:
    response = connection.query(obd.commands.VIN)
    assert bytes(response.value).decode() == VIN


def test_status_reports_mil_and_stored_code_count(connection: obd.OBD) -> None:
    status = connection.query(obd.commands.STATUS).value
    assert status.MIL is True
    assert status.DTC_count == len(STORED)


def test_pending_codes_are_read_with_mode_07(connection: obd.OBD) -> None:
    codes = connection.query(obd.commands.GET_CURRENT_DTC).value
    assert [c for c, _ in codes] == ["P0171"]


def test_elm_voltage_reads_the_running_charging_voltage(connection: obd.OBD) -> None:
    assert value(connection, "ELM_VOLTAGE") == pytest.approx(14.1, abs=0.2)


def test_stored_dtcs_read_over_two_frames_then_clear(connection: obd.OBD, vehicle: Vehicle) -> None:
    codes = connection.query(obd.commands.GET_DTC).value
    assert [c for c, _ in codes] == list(STORED)
    connection.query(obd.commands.CLEAR_DTC)
    assert connection.query(obd.commands.GET_DTC).value == []
    assert vehicle.snapshot().stored_dtcs == ()
    for code in STORED:
        vehicle.add_dtc(code)


def test_ignition_off_leaves_python_obd_short_of_car_connected() -> None:
    with Elm327Emulator(Vehicle(seed=3), latency_s=0.0) as emulator:
        conn = obd.OBD(emulator.port, fast=False)
        try:
            assert conn.status() == OBDStatus.OBD_CONNECTED
            voltage = conn.query(obd.commands.ELM_VOLTAGE, force=True).value
            assert voltage.magnitude == pytest.approx(12.4, abs=0.3)
        finally:
            conn.close()
