"""The OBD source against the project's simulated vehicle behind its ELM327 pty, with faults."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import BATTERY_SIGNAL_ID, ObdSource
from tests.waiting import wait_until

fleet = pytest.importorskip("fleetlink.simulator.fleet", reason="the simulator has not landed")


def settings(port: str, **overrides: object) -> ObdSection:
    values: dict[str, object] = {
        "port": port,
        "baudrate": 38400,
        "timeout_s": 0.1,
        "battery_rate_hz": 4,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        "no_data_rounds": 1,
        "stall_after_s": 1.0,
        "poll": [PollGroup(commands=["RPM", "SPEED"], rate_hz=10)],
    }
    values.update(overrides)
    return ObdSection.model_validate(values)


def drain(samples: queue.Queue[Sample]) -> list[Sample]:
    out = []
    while not samples.empty():
        out.append(samples.get_nowait())
    return out


@pytest.fixture(scope="module")
def vehicle() -> Iterator[object]:
    sim = fleet.SimulatedVehicle(seed=7, style=0.5, latency_s=0.005)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def running(vehicle: object) -> Iterator[tuple[ObdSource, queue.Queue[Sample]]]:
    source = ObdSource(settings(vehicle.port))  # type: ignore[attr-defined]
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    wait_until(lambda: source.state == "connected")
    yield source, samples
    source.stop()


def test_reads_the_simulated_vehicle_in_catalog_units(
    vehicle: object, running: tuple[ObdSource, queue.Queue[Sample]]
) -> None:
    _, samples = running
    time.sleep(1.0)
    got = drain(samples)
    ids = {s.signal_id for s in got}
    assert ids == {0x0C, 0x0D, BATTERY_SIGNAL_ID}
    rpm = [s.value for s in got if s.signal_id == 0x0C]
    assert all(0 <= v < 8000 for v in rpm) and max(rpm) > 400
    assert all(11 < s.value < 15.5 for s in got if s.signal_id == BATTERY_SIGNAL_ID)


def test_garbled_replies_are_counted_and_polling_continues(
    vehicle: object, running: tuple[ObdSource, queue.Queue[Sample]]
) -> None:
    source, samples = running
    vehicle.elm327.set_garbled(6)  # type: ignore[attr-defined]
    wait_until(lambda: source.counters["garbled_replies"] >= 6)
    drain(samples)
    wait_until(lambda: samples.qsize() >= 5)
    assert source.state == "connected"
    assert source.counters["connect_attempts"] == 1


def test_silent_adapter_is_reported_stalled_and_polled_again_without_reconnecting() -> None:
    sim = fleet.SimulatedVehicle(seed=5, latency_s=0.005)
    quiet = settings(sim.start(), battery_rate_hz=0, poll=[PollGroup(commands=["RPM"], rate_hz=5)])
    source = ObdSource(quiet)
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        wait_until(lambda: source.state == "connected")
        sim.elm327.set_silent(True)
        wait_until(lambda: source.state == "stalled")
        assert source.counters["silent_replies"] >= 1
        assert source.counters["stalls"] == 1
        sim.elm327.set_silent(False)
        wait_until(lambda: source.state == "connected")
        drain(samples)
        wait_until(lambda: not samples.empty())
        assert source.counters["connect_attempts"] == 1
        assert source.counters["stall_recoveries"] == 1
    finally:
        source.stop()
        sim.stop()


def test_ignition_off_is_reported_as_no_vehicle_and_battery_is_still_read() -> None:
    sim = fleet.SimulatedVehicle(seed=3, latency_s=0.005, ignition_on=False)
    sim.start()
    source = ObdSource(settings(sim.port, reconnect_min_s=2, reconnect_max_s=2))
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        wait_until(lambda: source.state != "unknown")
        assert source.state == "no_vehicle"
        wait_until(lambda: not samples.empty())
        assert {s.signal_id for s in drain(samples)} == {BATTERY_SIGNAL_ID}
    finally:
        source.stop()
        sim.stop()


def test_vanished_port_is_retried_and_a_replacement_adapter_is_picked_up(tmp_path: Path) -> None:
    first = fleet.SimulatedVehicle(seed=1, latency_s=0.005)
    link = tmp_path / "ttyOBD"
    os.symlink(first.start(), link)
    source = ObdSource(settings(str(link)))
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    second = fleet.SimulatedVehicle(seed=2, latency_s=0.005)
    try:
        wait_until(lambda: source.state == "connected")
        first.stop()
        wait_until(lambda: source.state == "disconnected")
        attempts = source.counters["connect_attempts"]
        wait_until(lambda: source.counters["connect_attempts"] >= attempts + 3)
        assert source.counters["link_lost"] + source.counters["connect_errors"] >= 1
        link.unlink()
        os.symlink(second.start(), link)
        wait_until(lambda: source.state == "connected")
        drain(samples)
        wait_until(lambda: not samples.empty())
    finally:
        source.stop()
        second.stop()


def test_mil_and_newly_stored_codes_are_read_between_polls() -> None:
    from fleetlink.edge.sources.obd_codes import MIL_SIGNAL_ID
    from fleetlink.shared.messages import Event

    sim = fleet.SimulatedVehicle(seed=11, latency_s=0.005)
    sim.start()
    sim.vehicle.clear_dtcs()
    source = ObdSource(settings(sim.port, dtc_interval_s=0.5))
    samples: queue.Queue[Sample] = queue.Queue()
    events: queue.Queue[Event] = queue.Queue()
    source.start(samples, events)
    try:
        got: list[Sample] = []

        def mil(value: float) -> bool:
            got.extend(drain(samples))
            return any(s.signal_id == MIL_SIGNAL_ID and s.value == value for s in got)

        wait_until(lambda: mil(0.0), 15, "the MIL read as off")
        sim.vehicle.add_dtc("P0217")  # engine over temperature
        got.clear()
        wait_until(lambda: mil(1.0), 15, "the MIL read as on")
        wait_until(lambda: not events.empty(), 15, "the dtc_set event")
        codes = []
        while not events.empty():
            event = events.get_nowait()
            if event.type == "dtc_set":
                codes.append(event.data["code"])
        assert codes == ["P0217"]
    finally:
        source.stop()
        sim.stop()
