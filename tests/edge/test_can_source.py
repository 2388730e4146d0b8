"""The CAN source: decodes the profile's signals, downsamples them, counts what it cannot
use, records on demand, and reports traffic or a silent bus; never crashes on bad input."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from fleetlink.edge.config import CanSection
from fleetlink.edge.sources.base import CanActivity, Sample
from fleetlink.edge.sources.can_source import CanSource
from fleetlink.firmware_profiles import load_can_profile
from fleetlink.shared.signals import by_name
from fleetlink.simulator.can_bus import SimulatedCanBus
from fleetlink.simulator.vehicle import Vehicle
from tests.waiting import wait_until

CAR = load_can_profile("fleetlink-sim-car").database
TRUCK = load_can_profile("heavy-truck-j1939").database
SPEED = by_name("Vehicle.Speed").id
RPM = by_name("Vehicle.Powertrain.CombustionEngine.Speed").id


@pytest.fixture
def channel() -> str:
    return f"can-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sender(channel: str) -> Iterator[can.BusABC]:
    bus = can.Bus(interface="virtual", channel=channel)
    yield bus
    bus.shutdown()


def start(profile: str, channel: str, **settings: object) -> tuple[CanSource, queue.Queue[Sample]]:
    source = CanSource(
        CanSection(profile=profile, interface="virtual", channel=channel, **settings)
    )
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    wait_until(lambda: source.counters["connects"] > 0, 5, "the source to open the bus")
    return source, samples


def frame(database: object, name: str, frame_id: int | None = None, **values: float) -> can.Message:
    message = database.get_message_by_name(name)  # type: ignore[attr-defined]
    full = {s.name: 0.0 for s in message.signals} | values
    return can.Message(
        arbitration_id=frame_id if frame_id is not None else message.frame_id,
        is_extended_id=message.is_extended_frame,
        data=message.encode(full),
    )


def drain(samples: queue.Queue[Sample]) -> list[Sample]:
    out = []
    while not samples.empty():
        out.append(samples.get_nowait())
    return out


def test_frames_decode_under_catalog_ids_and_are_downsampled_per_signal(
    channel: str, sender: can.BusABC
) -> None:
    source, samples = start("fleetlink-sim-car", channel)
    try:
        # VehicleSpeed: every 200 ms; EngineSpeed: at most every 100 ms and only on a change > 25.
        for i in range(50):
            sender.send(frame(CAR, "VEHICLE_SPEED", VehicleSpeed=50.0 + i))
            sender.send(frame(CAR, "ENGINE_STATUS", EngineSpeed=2000.0 + (i % 2) * 10))
        wait_until(lambda: source.counters["frames"] == 100, 5, "100 frames")
    finally:
        source.stop()
    got = drain(samples)
    speeds = [s.value for s in got if s.signal_id == SPEED]
    rpms = [s.value for s in got if s.signal_id == RPM]
    assert speeds[0] == 50.0 and 1 <= len(speeds) <= 3
    assert rpms == [2000.0]  # 2010 is within the 25 rpm deadband
    assert source.counters["unknown_id_frames"] == 0


def test_unknown_ids_and_undecodable_frames_are_counted_and_the_source_keeps_going(
    channel: str, sender: can.BusABC
) -> None:
    source, samples = start("fleetlink-sim-car", channel)
    try:
        sender.send(can.Message(arbitration_id=0x7FF, is_extended_id=False, data=b"\x01"))
        sender.send(can.Message(arbitration_id=0x3E9, is_extended_id=False, data=b"\x01\x02"))
        sender.send(frame(CAR, "VEHICLE_SPEED", VehicleSpeed=42.0))
        wait_until(lambda: source.counters["frames"] == 3, 5, "3 frames")
    finally:
        source.stop()
    assert source.counters["unknown_id_frames"] == 1
    assert source.counters["decode_errors"] == 1
    assert [s.value for s in drain(samples)] == [42.0]
    status = source.can_status()
    assert (status.frames, status.unknown_id_frames, status.decode_errors) == (3, 1, 1)
    # What the OBD source reads for the capability record and ignition-off detection.
    assert isinstance(source, CanActivity)
    assert source.can_ids_seen() == {
        0x7FF,
        0x3E9,
        CAR.get_message_by_name("VEHICLE_SPEED").frame_id,
    }
    since = source.seconds_since_can_frame()
    assert since is not None and 0 <= since < 5


def test_j1939_frames_match_by_pgn_from_any_source_address_with_transforms(
    channel: str, sender: can.BusABC
) -> None:
    source, samples = start("heavy-truck-j1939", channel)
    try:
        # EEC1 from source address 0x01 (a second engine controller) at priority 6.
        sender.send(frame(TRUCK, "EEC1", 0x18F00401, EngineSpeed=1500.0))
        sender.send(frame(TRUCK, "HRVD", HighResolutionTotalVehicleDistance=123_456_785))
        sender.send(frame(TRUCK, "CCVS1", ParkingBrakeSwitch=1, WheelBasedVehicleSpeed=80.5))
        # DM1: SPN 520192 (0x7F000) arrives as 16 low bits and 3 high bits, FMI 31.
        sender.send(
            frame(
                TRUCK,
                "DM1",
                MalfunctionIndicatorLampStatus=1,
                DTC1_SPN_Low=0xF000,
                DTC1_SPN_High=7,
                DTC1_FMI=31,
            )
        )
        wait_until(lambda: source.counters["frames"] == 4, 5, "4 frames")
    finally:
        source.stop()
    values = {s.signal_id: s.value for s in drain(samples)}
    assert values[RPM] == 1500.0
    assert values[by_name("Vehicle.TraveledDistance").id] == pytest.approx(123_456.785)
    assert values[by_name("Vehicle.Chassis.ParkingBrake.IsEngaged").id] == 1.0
    assert values[SPEED] == pytest.approx(80.5)
    assert values[by_name("Vehicle.OBD.Status.IsMILOn").id] == 1.0
    assert values[by_name("Vehicle.OBD.DM1.ActiveSPN").id] == 520_192
    assert values[by_name("Vehicle.OBD.DM1.ActiveFMI").id] == 31


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf"])
def test_frames_are_recorded_with_python_cans_writers(
    channel: str, sender: can.BusABC, tmp_path: Path, suffix: str
) -> None:
    record = tmp_path / f"capture{suffix}"
    source, _ = start("fleetlink-sim-car", channel, record=record)
    sent = [frame(CAR, "VEHICLE_SPEED", VehicleSpeed=float(i)) for i in range(20)]
    try:
        for message in sent:
            sender.send(message)
        wait_until(lambda: source.counters["frames_recorded"] == 20, 5, "20 frames recorded")
    finally:
        source.stop()
    replayed = list(can.LogReader(record))
    assert [bytes(m.data) for m in replayed] == [bytes(m.data) for m in sent]
    assert {m.arbitration_id for m in replayed} == {0x3E9}


def test_a_silent_bus_reads_as_no_vehicle_and_traffic_brings_it_back(channel: str) -> None:
    vehicle = Vehicle(3)
    vehicle.set_ignition(True)
    with SimulatedCanBus(vehicle, "car", "virtual", channel=channel):
        source, _ = start("fleetlink-sim-car", channel, silent_after_s=0.3)
        try:
            wait_until(lambda: source.bus_state == "traffic", 5, "traffic")
            assert source.state == "connected"
            vehicle.set_ignition(False)
            wait_until(lambda: source.bus_state == "silent", 5, "a silent bus")
            assert source.state == "no_vehicle" and source.can_status().bus == "silent"
            vehicle.set_ignition(True)
            wait_until(lambda: source.bus_state == "traffic", 5, "traffic again")
        finally:
            source.stop()
    assert source.counters["unknown_id_frames"] > 0  # the car's undescribed modules


def test_garbled_slcan_lines_are_counted_and_decoding_carries_on() -> None:
    vehicle = Vehicle(4)
    vehicle.set_ignition(True)
    with SimulatedCanBus(vehicle, "car", "slcan") as bus:
        assert bus.port is not None and bus.slcan is not None
        source = CanSource(CanSection(profile="fleetlink-sim-car", channel=bus.port))
        samples: queue.Queue[Sample] = queue.Queue()
        source.start(samples)
        try:
            wait_until(lambda: source.counters["frames"] > 500, 10, "500 frames")
            bus.slcan.garble(60)
            wait_until(lambda: bus.slcan.counters["lines_garbled"] >= 60, 5, "garbled lines")
            before = source.counters["frames"]
            wait_until(lambda: source.counters["frames"] > before + 500, 5, "500 more frames")
        finally:
            source.stop()
    errors = source.counters["garbled_lines"] + source.counters["decode_errors"]
    assert errors > 0
    assert source.counters["samples"] > 0 and source.bus_state == "traffic"
    assert {s.signal_id for s in drain(samples)} >= {SPEED, RPM}


def test_the_agents_status_message_carries_the_can_state_and_counters(
    channel: str, sender: can.BusABC, tmp_path: Path
) -> None:
    from fleetlink.edge.agent import Agent
    from fleetlink.edge.config import parse_config
    from fleetlink.shared.codec import decode
    from fleetlink.shared.messages import Status

    config = parse_config(
        {
            "device": {"id": "can-status", "tenant": "acme"},
            "mqtt": {"url": "mqtt://127.0.0.1:9"},
            "can": {"profile": "fleetlink-sim-car", "interface": "virtual", "channel": channel},
            "outbox": {"path": str(tmp_path / "o.db")},
        }
    )
    agent = Agent(config)
    source = agent.sources[0]
    source.start(agent.samples)
    try:
        wait_until(lambda: source.counters["connects"] > 0, 5, "the source to open the bus")
        sender.send(can.Message(arbitration_id=0x7FF, is_extended_id=False, data=b"\x01"))
        wait_until(lambda: source.counters["frames"] == 1, 5, "a frame")
        status = decode(agent.uplink._status(online=True), Status)
    finally:
        source.stop()
        agent.outbox.close()
    assert status.adapter == "connected"
    assert status.can is not None and status.can.bus == "traffic"
    assert (status.can.frames, status.can.unknown_id_frames) == (1, 1)


def test_a_recording_that_cannot_be_written_is_counted_and_decoding_goes_on(
    channel: str, sender: can.BusABC, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    source, samples = start("fleetlink-sim-car", channel, record=blocker / "capture.asc")
    try:
        sender.send(frame(CAR, "VEHICLE_SPEED", VehicleSpeed=33.0))
        wait_until(lambda: source.counters["frames"] == 1, 5, "a frame")
    finally:
        source.stop()
    assert source.counters["record_errors"] == 1
    assert [s.value for s in drain(samples)] == [33.0]
