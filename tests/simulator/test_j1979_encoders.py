"""J1979 encoders: python-obd's own decoders give back every encoded value within resolution."""

from __future__ import annotations

from collections.abc import Callable

import obd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from obd.protocols.protocol import Message

from fleetlink.simulator import j1979

Encoder = Callable[[float], bytes]


def decode(command: str, data: bytes) -> float:
    """Decode mode 01 data bytes with python-obd's decoder for ``command``; return the magnitude."""
    cmd = obd.commands[command]
    message = Message([])
    message.data = bytearray(bytes((0x41, cmd.pid)) + data)
    value = cmd.decode([message])
    return float(value.magnitude)


CASES: list[tuple[str, Encoder, float, float, float]] = [
    # python-obd command, encoder, low, high, resolution
    ("ENGINE_LOAD", j1979.encode_percent, 0, 100, 100 / 255),
    ("SHORT_FUEL_TRIM_1", j1979.encode_percent_centered, -100, 99.2, 100 / 128),
    ("COOLANT_TEMP", j1979.encode_temperature, -40, 215, 1),
    ("RPM", j1979.encode_rpm, 0, 16383.75, 0.25),
    ("SPEED", j1979.encode_byte, 0, 255, 1),
    ("INTAKE_PRESSURE", j1979.encode_byte, 0, 255, 1),
    ("MAF", j1979.encode_maf, 0, 655.35, 0.01),
    ("TIMING_ADVANCE", j1979.encode_timing_advance, -64, 63.5, 0.5),
    ("FUEL_PRESSURE", j1979.encode_fuel_pressure, 0, 765, 3),
    ("RUN_TIME", j1979.encode_word, 0, 65535, 1),
    ("DISTANCE_SINCE_DTC_CLEAR", j1979.encode_word, 0, 65535, 1),
    ("CATALYST_TEMP_B1S1", j1979.encode_catalyst_temperature, -40, 6513.5, 0.1),
    ("CONTROL_MODULE_VOLTAGE", j1979.encode_voltage, 0, 65.535, 0.001),
    ("ABSOLUTE_LOAD", j1979.encode_absolute_load, 0, 25700, 100 / 255),
    ("FUEL_RATE", j1979.encode_fuel_rate, 0, 3276.75, 0.05),
    ("WARMUPS_SINCE_DTC_CLEAR", j1979.encode_byte, 0, 255, 1),
]


@pytest.mark.parametrize(("command", "encoder", "low", "high", "resolution"), CASES)
@given(fraction=st.floats(min_value=0.0, max_value=1.0))
def test_python_obd_decodes_what_the_encoder_wrote(
    command: str, encoder: Encoder, low: float, high: float, resolution: float, fraction: float
) -> None:
    value = low + (high - low) * fraction
    assert decode(command, encoder(value)) == pytest.approx(value, abs=resolution / 2 + 1e-9)


@given(ratio=st.floats(min_value=0.0, max_value=1.99))
def test_equivalence_ratio_round_trips_within_python_obds_rounded_scale(ratio: float) -> None:
    # python-obd scales by 0.0000305 where J1979 says 2/65536; the two differ by 0.06 %, and
    # that error adds to the encoding's own step of 2/65536.
    decoded = decode("COMMANDED_EQUIV_RATIO", j1979.encode_equivalence_ratio(ratio))
    assert abs(decoded - ratio) <= 2 / 65536 + 0.001 * ratio


@pytest.mark.parametrize(
    ("value", "encoder"), [(-50.0, j1979.encode_temperature), (300.0, j1979.encode_byte)]
)
def test_values_outside_the_field_range_are_clamped_not_wrapped(
    value: float, encoder: Encoder
) -> None:
    assert encoder(value) in (b"\x00", b"\xff")


@given(
    letter=st.sampled_from("PCBU"),
    first=st.integers(0, 3),
    rest=st.integers(0, 0xFFF),
)
def test_dtc_codes_round_trip_through_python_obd(letter: str, first: int, rest: int) -> None:
    code = f"{letter}{first}{rest:03X}"
    if code[1:] == "0000" and letter == "P":
        return  # P0000 is the padding value, never a real code
    # python-obd prints the hex digits of a code in lower case ("P000a").
    assert obd.decoders.parse_dtc(j1979.encode_dtc(code))[0].upper() == code


@pytest.mark.parametrize("bad", ["P4000", "X0123", "P012", "P01G3"])
def test_malformed_dtcs_are_refused(bad: str) -> None:
    with pytest.raises(j1979.InvalidDtcError):
        j1979.encode_dtc(bad)


def test_support_bitmaps_list_exactly_the_supported_pids() -> None:
    supported = j1979.supported_mode_01_pids()
    listed = set()
    for base in (0x00, 0x20, 0x40, 0x60):
        bits = int.from_bytes(j1979.support_bitmap(base, supported), "big")
        listed |= {base + i for i in range(1, 33) if bits & (1 << (32 - i))}
    assert listed == supported - {0x00}
