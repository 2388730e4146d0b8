"""ECU-sleep awareness and battery protection, driven by the simulated vehicle on a pty:
the ignition goes off (polling pauses, the vehicle is probed slowly), the battery runs down
(polling stops), and a CAN bus that goes quiet says the same as NO DATA."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.sources import connect_can_activity
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import BATTERY_SIGNAL_ID, ObdSource
from fleetlink.shared.codec import decode, encode
from fleetlink.shared.messages import Event, Status
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.waiting import wait_until


def settings(port: str, **overrides: object) -> ObdSection:
    values: dict[str, object] = {
        "port": port,
        "baudrate": 38400,
        "timeout_s": 0.3,
        "battery_rate_hz": 4,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.8,
        "no_data_rounds": 2,
        "tune_timing": False,
        "poll": [PollGroup(commands=["RPM", "SPEED"], rate_hz=10)],
    }
    values.update(overrides)
    return ObdSection.model_validate(values)


class Running:
    """A started source with its sample and event queues."""

    def __init__(self, source: ObdSource) -> None:
        self.source = source
        self.samples: queue.Queue[Sample] = queue.Queue()
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        source.start(self.samples, self.events)

    def event_types(self) -> list[str]:
        while not self.events.empty():
            self.seen.append(self.events.get_nowait())
        return [e.type for e in self.seen]


@pytest.fixture
def sim() -> Iterator[SimulatedVehicle]:
    with SimulatedVehicle(seed=8, latency_s=0.005) as vehicle:
        yield vehicle


def test_ignition_off_pauses_polling_and_ignition_on_resumes_it(sim: SimulatedVehicle) -> None:
    run = Running(ObdSource(settings(str(sim.port))))
    try:
        wait_until(lambda: run.source.power == "awake")
        sim.set_ignition(False)
        wait_until(lambda: run.source.power == "ignition_off")
        assert "ignition_off" in run.event_types()
        assert run.source.vehicle_report().power == "ignition_off"
        time.sleep(0.5)  # let a probe round finish
        asked = sim.elm327.requests_by_mode.get(1, 0)
        time.sleep(2.0)
        # asleep: only the slow probe (one 0100 search per reconnect) reaches the bus
        assert sim.elm327.requests_by_mode.get(1, 0) - asked <= 4
        battery = [s for s in list(run.samples.queue) if s.signal_id == BATTERY_SIGNAL_ID]
        assert battery  # the adapter's own voltage reading goes on
        sim.set_ignition(True)
        wait_until(lambda: run.source.power == "awake")
        assert run.event_types()[-1] == "ignition_on"
    finally:
        run.source.stop()
    assert run.source.counters["link_no_data"] >= 1


def test_a_falling_battery_stops_polling_reports_it_and_polling_resumes_when_charged(
    sim: SimulatedVehicle,
) -> None:
    run = Running(ObdSource(settings(str(sim.port), low_voltage_v=12.0)))
    try:
        wait_until(lambda: run.source.power == "awake")
        sim.set_ignition(False)
        sim.vehicle.set_battery_drain(1.0)
        wait_until(lambda: run.source.power == "low_voltage")
        low = [e for e in (run.event_types() and run.seen) if e.type == "low_voltage"]
        assert len(low) == 1 and low[0].severity == "warning"
        assert low[0].data["limit_v"] == 12.0
        assert isinstance(low[0].data["battery_v"], float) and low[0].data["battery_v"] < 12.0
        report = run.source.vehicle_report()
        assert report.power == "low_voltage" and report.battery_v is not None
        # the status message carries it, and decodes as any status does
        status = Status(device_id="d", online=True, time_ms=1, vehicle=report)
        assert decode(encode(status), Status).vehicle == report
        time.sleep(0.5)
        asked = sim.elm327.requests_by_mode.get(1, 0)
        time.sleep(1.5)
        assert sim.elm327.requests_by_mode.get(1, 0) == asked  # nothing sent on the bus
        sim.vehicle.set_battery_drain(0.0)
        sim.set_ignition(True)  # the engine starts and the alternator charges
        wait_until(lambda: run.source.power == "awake", 20)
        assert "voltage_restored" in run.event_types()
    finally:
        run.source.stop()
    assert run.source.counters["low_voltage_stops"] == 1


class QuietBus:
    """What a CAN source reports: the ids it saw and when its last frame came."""

    def __init__(self) -> None:
        self.last_frame = time.monotonic()

    def can_ids_seen(self) -> frozenset[int]:
        return frozenset({0x0C9, 0x1E5, 0x3E9})

    def seconds_since_can_frame(self) -> float | None:
        return time.monotonic() - self.last_frame


def test_a_quiet_can_bus_means_ignition_off_and_its_ids_join_the_record(
    sim: SimulatedVehicle,
) -> None:
    source = ObdSource(settings(str(sim.port), can_quiet_s=1.0))
    bus = QuietBus()
    source.observe_can(bus)
    Running(source)
    try:
        wait_until(lambda: source.capabilities is not None)
        assert source.capabilities is not None and source.capabilities.can_ids == [
            0x0C9,
            0x1E5,
            0x3E9,
        ]
        assert source.vehicle_report().capabilities["can_ids"] == 3
        wait_until(lambda: source.power == "ignition_off")  # frames stopped 1 s ago
        assert source.counters["can_quiet"] >= 1
        # the vehicle still answers OBD: the silent bus says nothing of the ignition then
        wait_until(lambda: source.power == "awake")
        time.sleep(1.5)
        assert source.power == "awake" and source.counters["can_quiet"] == 1
        bus.last_frame = time.monotonic()  # traffic again: its silence counts once more
        wait_until(lambda: source.counters["can_quiet"] == 2)
    finally:
        source.stop()


def test_sources_that_observe_can_are_given_the_can_activity() -> None:
    source = ObdSource(settings("/dev/null"))
    bus = QuietBus()
    connect_can_activity([source, bus])  # type: ignore[list-item]
    assert source._can is bus
