"""Encoding signal values into replies (the simulator's side) is the inverse of decoding."""

from __future__ import annotations

import pytest

from fleetlink.firmware_profiles.obdb import VehicleSignals, decode_reply
from fleetlink.firmware_profiles.obdb.encode import encode_payload, raw_value
from fleetlink.firmware_profiles.obdb.signalset import Command, parse_command
from fleetlink.simulator import isotp
from tests.field_data import field_data

FIELD = field_data("obdb")
needs_field_data = pytest.mark.skipif(
    not FIELD.is_dir(), reason=f"OBDb field data not present at {FIELD}"
)


def _reply(command: Command, payload: bytes) -> str:
    message = bytes((command.service + 0x40,)) + command.pid.to_bytes(command.pid_bytes, "big")
    reply_id = int(command.reply_from, 16)
    return "\n".join(
        isotp.elm_lines(
            isotp.segment(message + payload),
            can_id=reply_id,
            headers=True,
            spaces=True,
            extended=reply_id > 0x7FF,
        )
    )


def _within_range(command: Command) -> dict[str, float | str]:
    values: dict[str, float | str] = {}
    used: set[int] = set()
    for signal in command.signals:
        bits = set(range(signal.bix, signal.bix + signal.length))
        if bits & used:
            continue  # another reading of the same bits (signed and unsigned variants)
        used |= bits
        if signal.value_map:
            values[signal.id] = next(iter(signal.value_map.values()))
            continue
        high = signal.max if signal.max is not None and signal.max > signal.min else signal.min
        values[signal.id] = signal.min + (high - signal.min) * 0.37
    return values


def test_signed_little_endian_and_offset_signals_round_trip() -> None:
    command = parse_command(
        {
            "hdr": "7E4",
            "rax": "7EC",
            "cmd": {"22": "1234"},
            "freq": 1,
            "signals": [
                {"id": "T", "fmt": {"len": 8, "add": -40, "max": 215, "min": -40}},
                {"id": "I", "fmt": {"bix": 8, "len": 16, "sign": True, "div": 20, "min": -1600}},
                {"id": "L", "fmt": {"bix": 24, "len": 16, "blsb": True, "max": 65535}},
            ],
        }
    )
    payload = encode_payload(command, {"T": -12, "I": -37.45, "L": 0x1234})
    assert payload == bytes((28,)) + (-749).to_bytes(2, "big", signed=True) + b"\x34\x12"
    decoded = decode_reply(VehicleSignals((command,)), _reply(command, payload))
    assert decoded.values == {"T": -12, "I": pytest.approx(-37.45), "L": 0x1234}


def test_values_beyond_the_bit_field_are_clamped_not_wrapped() -> None:
    command = parse_command(
        {"hdr": "7E4", "cmd": {"22": "0001"}, "signals": [{"id": "P", "fmt": {"len": 8}}]}
    )
    assert raw_value(command.signals[0], 300) == 255
    assert raw_value(command.signals[0], -5) == 0


@needs_field_data
def test_every_bolt_ev_signal_decodes_back_to_the_value_encoded() -> None:
    files = [
        FIELD / name / "signalsets" / "v3" / "default.json"
        for name in ("Chevrolet-Bolt-EV", "Chevrolet")
    ]
    vehicle = VehicleSignals.from_files(files, 2019)
    checked = 0
    for command in vehicle.commands:
        values = _within_range(command)
        decoded = decode_reply(
            VehicleSignals((command,)), _reply(command, encode_payload(command, values))
        )
        for signal in command.signals:
            if signal.id not in values:
                continue
            want = values[signal.id]
            if isinstance(want, str):
                assert decoded.values[signal.id] == want
            else:
                step = abs(signal.mul / signal.div)
                assert decoded.values[signal.id] == pytest.approx(want, abs=step), signal.id
            checked += 1
    assert checked > 150
