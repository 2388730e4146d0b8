"""Fast OBD polling against the simulated vehicle on a pty: several PIDs per request, ELM
timing tuned (and a clone that refuses it), and every bad reply an adapter can give."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlink.edge.capabilities import CapabilityStore
from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.timing import tune
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import ObdSource
from fleetlink.shared.messages import Event
from fleetlink.simulator import j1979
from fleetlink.simulator.bench.link_stall import count_wrong, decode_payload
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.waiting import wait_until

COMMANDS = ["RPM", "SPEED", "COOLANT_TEMP", "ENGINE_LOAD", "THROTTLE_POS", "INTAKE_TEMP"]


def settings(port: str, **overrides: object) -> ObdSection:
    values: dict[str, object] = {
        "port": port,
        "baudrate": 38400,
        "timeout_s": 0.3,
        "battery_rate_hz": 0,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        "poll": [PollGroup(commands=COMMANDS, rate_hz=20)],
    }
    values.update(overrides)
    return ObdSection.model_validate(values)


def drain(samples: queue.Queue[Sample]) -> list[Sample]:
    out = []
    while not samples.empty():
        out.append(samples.get_nowait())
    return out


def stored_values(samples: list[Sample]) -> dict[int, list[float]]:
    stored: dict[int, list[float]] = {}
    for sample in samples:
        stored.setdefault(sample.signal_id, []).append(sample.value)
    return stored


def produced_values(sim: SimulatedVehicle) -> dict[int, list[float]]:
    produced: dict[int, list[float]] = {}
    for request, payload in sim.elm327.served():
        for pid, value in decode_payload(payload) if request.startswith("01") else []:
            produced.setdefault(pid, []).append(value)
    return produced


@pytest.fixture
def sim() -> Iterator[SimulatedVehicle]:
    with SimulatedVehicle(seed=5, style=0.6, latency_s=0.005) as vehicle:
        yield vehicle


@pytest.fixture
def clone() -> Iterator[SimulatedVehicle]:
    with SimulatedVehicle(seed=6, latency_s=0.005, clone=True) as vehicle:
        yield vehicle


def run_source(
    source: ObdSource, until: object, timeout_s: float = 15.0
) -> tuple[list[Sample], list[Event]]:
    samples: queue.Queue[Sample] = queue.Queue()
    events: queue.Queue[Event] = queue.Queue()
    source.start(samples, events)
    try:
        wait_until(until, timeout_s)  # type: ignore[arg-type]
    finally:
        source.stop()
    return drain(samples), [events.get_nowait() for _ in range(events.qsize())]


def test_six_pids_travel_in_one_request_and_every_value_is_the_vehicles(
    sim: SimulatedVehicle,
) -> None:
    source = ObdSource(settings(str(sim.port)))
    got, _ = run_source(source, lambda: source.counters["samples"] >= 120)
    mode_01 = sim.elm327.requests_by_mode.get(1, 0)
    # discovery asks bitmaps and timing probes one by one; polling asks six at a time
    assert len(got) >= 5 * (mode_01 - 12), (len(got), mode_01)
    assert set(stored_values(got)) == {0x0C, 0x0D, 0x05, 0x04, 0x11, 0x0F}
    assert count_wrong(stored_values(got), produced_values(sim)) == 0
    assert source.counters["mismatched_replies"] == source.counters["garbled_replies"] == 0


def test_the_adapter_is_tuned_to_aggressive_adaptive_timing_and_a_short_timeout(
    sim: SimulatedVehicle,
) -> None:
    link = Elm327Link(str(sim.port), baudrate=38400, timeout_s=0.5)
    try:
        assert link.open() == "vehicle"
        timing = tune(link)
    finally:
        link.close()
    assert timing.adaptive == 2 and not timing.refused
    assert timing.timeout_st is not None and timing.timeout_st < 0x32
    assert sim.elm327.timing == (timing.timeout_st, 2)


def test_a_clone_that_refuses_timing_commands_keeps_its_own_and_is_still_polled(
    clone: SimulatedVehicle,
) -> None:
    source = ObdSource(settings(str(clone.port)))
    got, _ = run_source(source, lambda: source.counters["samples"] >= 60)
    assert source.timing is not None
    assert source.timing.adaptive is None and source.timing.timeout_st is None
    assert source.timing.refused[:2] == ["ATAT2", "ATAT1"]
    assert len(source.timing.refused) == 3 and source.timing.refused[2].startswith("ATST")
    assert source.counters["timing_refused"] == 3
    assert clone.elm327.timing == (0x32, 1)  # the adapter's defaults after ATZ
    assert count_wrong(stored_values(got), produced_values(clone)) == 0


@pytest.mark.parametrize(
    ("reply", "counter"),
    [
        ("?", "adapter_said:?"),
        ("BUFFER FULL", "adapter_said:BUFFER FULL"),
        ("CAN ERROR", "adapter_said:CAN ERROR"),
        ("STOPPED", "adapter_said:STOPPED"),
        ("TRUNCATED", "truncated_replies"),
    ],
)
def test_each_bad_reply_is_counted_logged_once_and_polling_goes_on(
    sim: SimulatedVehicle, caplog: pytest.LogCaptureFixture, reply: str, counter: str
) -> None:
    caplog.set_level(logging.INFO, logger="fleetlink.edge.sources.obd_source")
    source = ObdSource(settings(str(sim.port)))
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        wait_until(lambda: source.counters["samples"] >= 30)
        held = samples.qsize()
        sim.elm327.inject_error_replies(*[reply] * 4)
        wait_until(lambda: source.counters[counter] >= 4)
        after = source.counters["samples"]
        wait_until(lambda: source.counters["samples"] >= after + 30)
    finally:
        source.stop()
    got = drain(samples)
    assert len(got) >= held + 30  # what was buffered before is all still there
    assert source.state == "connected" and source.counters["connect_attempts"] == 1
    assert source.counters["poll_errors"] == 0
    assert count_wrong(stored_values(got), produced_values(sim)) == 0
    warnings = [r for r in caplog.records if "answers with errors" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


def test_the_vehicle_is_recorded_and_the_fitting_profile_reported(
    sim: SimulatedVehicle, tmp_path: Path
) -> None:
    path = tmp_path / "vehicle.sqlite"
    source = ObdSource(settings(str(sim.port), poll=[]), capabilities_path=path)
    _, events = run_source(source, lambda: source.counters["samples"] >= 10)
    report = source.vehicle_report()
    assert report.profile == "generic-obd2" and report.profile_version == "1.0.0"
    assert report.power == "awake"
    assert report.capabilities["vin"] == sim.vin
    assert report.capabilities["protocol"] == "6"
    assert report.capabilities["supported_pids"] == len(j1979.MODE_01_ENCODERS)
    store = CapabilityStore(path)
    record = store.latest()
    store.close()
    assert record is not None and record.vin == sim.vin and 0x0C in record.supported_pids
    identified = [e for e in events if e.type == "vehicle_identified"]
    assert len(identified) == 1 and identified[0].data["first_seen"] is True
