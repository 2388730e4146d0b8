"""The simulator's CAN bus: python-can's own slcan interface opens the SLCAN pty unmodified,
sees the vehicle's periodic schedule, and gets OBD-II answers over ISO-TP on the same bus."""

from __future__ import annotations

import time

import can
import pytest

from fleetlink.simulator.can_bus import SimulatedCanBus
from fleetlink.simulator.can_schedule import CanSchedule
from fleetlink.simulator.slcan import frame_line, parse_frame
from fleetlink.simulator.vehicle import Vehicle


def running_vehicle(seed: int = 1) -> Vehicle:
    vehicle = Vehicle(seed)
    vehicle.set_ignition(True)
    vehicle.set_pedals(30.0, 0.0)
    for _ in range(100):
        vehicle.step(0.1)
    return vehicle


def collect(bus: can.BusABC, seconds: float) -> list[can.Message]:
    frames = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = bus.recv(0.05)
        if frame is not None:
            frames.append(frame)
    return frames


def request(bus: can.BusABC, payload: bytes, answer_id: int = 0x7E8) -> can.Message:
    data = bytes((len(payload),)) + payload
    bus.send(can.Message(arbitration_id=0x7DF, is_extended_id=False, data=data.ljust(8, b"\0")))
    end = time.monotonic() + 2
    while time.monotonic() < end:
        frame = bus.recv(0.1)
        if frame is not None and frame.arbitration_id == answer_id:
            return frame
    raise AssertionError(f"no answer to {payload.hex()}")


def test_python_cans_slcan_interface_reads_the_cars_schedule_and_gets_obd_answers() -> None:
    vehicle = running_vehicle()
    with SimulatedCanBus(vehicle, "car", "slcan") as sim:
        client = can.Bus(interface="slcan", channel=sim.port, bitrate=500_000, sleep_after_open=0)
        try:
            sent_before, started = sim.counters["frames"], time.monotonic()
            frames = collect(client, 1.0)
            sent_per_s = (sim.counters["frames"] - sent_before) / (time.monotonic() - started)
            rpm = request(client, bytes((0x01, 0x0C)))
            # The VIN takes a first frame, a flow control from us, then consecutive frames.
            first = request(client, bytes((0x09, 0x02)))
            assert first.data[0] >> 4 == 1 and first.data[2:4] == bytes((0x49, 0x02))
            client.send(
                can.Message(
                    arbitration_id=0x7E0,
                    is_extended_id=False,
                    data=bytes((0x30, 0, 0, 0, 0, 0, 0, 0)),
                )
            )
            rest = [f for f in collect(client, 0.3) if f.arbitration_id == 0x7E8]
        finally:
            client.shutdown()
    assert sim.slcan is not None and sim.slcan.bitrate == 500_000
    assert 1_500 <= sent_per_s <= 3_000 and len(frames) > 500
    assert {f.arbitration_id for f in frames} >= {0x0C9, 0x1A0, 0x3E9}
    assert not any(f.is_extended_id for f in frames)
    assert rpm.data[:3] == bytes((0x04, 0x41, 0x0C))
    assert (rpm.data[3] * 256 + rpm.data[4]) / 4 == pytest.approx(vehicle.snapshot().rpm, abs=1)
    vin = (bytes(first.data[5:]) + b"".join(bytes(f.data[1:]) for f in rest))[:17]
    assert vin.decode() == vehicle.vin


def test_the_truck_speaks_j1939_with_29_bit_ids_on_a_virtual_bus() -> None:
    vehicle = running_vehicle(2)
    with SimulatedCanBus(vehicle, "truck", "virtual", channel="sim-truck-test"):
        client = can.Bus(interface="virtual", channel="sim-truck-test")
        try:
            frames = collect(client, 1.0)
        finally:
            client.shutdown()
    assert frames and all(f.is_extended_id for f in frames)
    pgns = {(f.arbitration_id >> 8) & 0x3FFFF for f in frames}
    assert {0xF004, 0xFEF1, 0xFEF2, 0xFEE0} <= pgns
    eec1 = [f for f in frames if (f.arbitration_id >> 8) & 0x3FFFF == 0xF004]
    assert 80 <= len(eec1) <= 120  # 10 ms cycle


def test_the_car_schedule_carries_1500_to_3000_frames_per_second() -> None:
    assert 1_500 <= CanSchedule("car").frames_per_s <= 3_000


def test_slcan_lines_round_trip_and_malformed_ones_parse_to_nothing() -> None:
    message = can.Message(arbitration_id=0x18FEF100, is_extended_id=True, data=b"\x01\x02")
    line = frame_line(message).decode()
    assert line == "T18FEF1002" + "0102\r"
    parsed = parse_frame(line.strip())
    assert parsed is not None and parsed.arbitration_id == 0x18FEF100
    assert parsed.data == b"\x01\x02"
    for bad in ("t12", "t1ZZ0", "t12320102FF", "T18FEF1009" + "00" * 9, "x"):
        assert parse_frame(bad) is None
