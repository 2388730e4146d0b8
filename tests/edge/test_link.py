"""The checked adapter link against the simulator's ELM327: ports by any name, baud rates,
replies that answer another request, and giving up in bounded time."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.errors import AdapterNotFoundError, PortError
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import ObdSource
from fleetlink.simulator.bench.link_stall import count_wrong, decode_payload
from fleetlink.simulator.fleet import SimulatedVehicle
from tests.waiting import wait_until


@pytest.fixture
def car() -> Iterator[SimulatedVehicle]:
    sim = SimulatedVehicle(seed=4, style=0.7, latency_s=0.005)
    sim.start()
    yield sim
    sim.stop()


def test_a_symlinked_port_connects_without_a_baudrate(
    car: SimulatedVehicle, tmp_path: Path
) -> None:
    by_id = tmp_path / "serial" / "by-id"
    by_id.mkdir(parents=True)
    link_path = by_id / "usb-OBDII_ELM327_v1.5-if00-port0"
    os.symlink(str(car.port), link_path)
    link = Elm327Link(str(link_path), timeout_s=0.5)
    try:
        assert link.open() == "vehicle"
        assert link.device == car.port
        assert link.baudrate == 38400
        assert link.query("SPEED").kind == "ok"
    finally:
        link.close()


def test_the_baud_rate_is_found_among_the_usual_elm327_rates(tmp_path: Path) -> None:
    with SimulatedVehicle(seed=4, latency_s=0.0, baudrate=115200) as sim:
        os.symlink(str(sim.port), tmp_path / "ttyOBD")
        link = Elm327Link(str(tmp_path / "ttyOBD"), timeout_s=0.3)
        try:
            assert link.open() == "vehicle"
            assert link.baudrate == 115200
        finally:
            link.close()


def test_a_wrong_explicit_baud_rate_is_named_in_the_error() -> None:
    with SimulatedVehicle(seed=4, latency_s=0.0, baudrate=115200) as sim:
        link = Elm327Link(str(sim.port), baudrate=9600, timeout_s=0.3)
        with pytest.raises(AdapterNotFoundError, match=r"sent ATI at 9600 baud"):
            link.open()


def test_a_silent_port_gives_up_within_10_s_naming_every_rate_tried(
    car: SimulatedVehicle,
) -> None:
    car.elm327.set_silent(True)
    started = time.monotonic()
    with pytest.raises(AdapterNotFoundError) as raised:
        Elm327Link(str(car.port), timeout_s=1.0).open(give_up_after_s=9.0)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert str(car.port) in message
    for rate in ("38400", "9600", "115200", "57600", "19200", "230400"):
        assert rate in message


def test_a_path_that_is_not_a_serial_device_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "not-a-tty"
    plain.write_text("")
    with pytest.raises(PortError, match="is not a serial device"):
        Elm327Link(str(plain)).open()
    with pytest.raises(PortError, match="does not exist"):
        Elm327Link(str(tmp_path / "missing")).open()


def test_replies_for_another_pid_are_discarded_and_every_stored_value_is_right(
    car: SimulatedVehicle,
) -> None:
    settings = ObdSection(
        port=str(car.port),
        timeout_s=0.3,
        battery_rate_hz=0,
        poll=[PollGroup(commands=["RPM", "SPEED", "COOLANT_TEMP"], rate_hz=10)],
        strategy="one_pid",  # the simulator swaps PIDs of single-PID requests
    )
    source = ObdSource(settings)
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        wait_until(lambda: source.state == "connected")
        car.elm327.set_wrong_pid(8)
        wait_until(lambda: source.counters["mismatched_replies"] >= 8)
        before = source.counters["ok_replies"]
        wait_until(lambda: source.counters["ok_replies"] >= before + 10)
    finally:
        source.stop()
    assert source.state == "connected"
    assert source.counters["connect_attempts"] == 1
    stored: dict[int, list[float]] = {}
    while not samples.empty():
        sample = samples.get_nowait()
        stored.setdefault(sample.signal_id, []).append(sample.value)
    produced: dict[int, list[float]] = {}
    for request, payload in car.elm327.served():
        for pid, value in decode_payload(payload) if request.startswith("01") else []:
            produced.setdefault(pid, []).append(value)
    assert set(stored) == {0x0C, 0x0D, 0x05}
    assert count_wrong(stored, produced) == 0
    # the wrong-PID replies themselves were produced, just not for the signal asked for
    assert sum(len(v) for v in produced.values()) >= sum(len(v) for v in stored.values()) + 8


def test_counting_wrong_values_catches_a_value_under_another_signal() -> None:
    produced = {0x0C: [800.0, 810.5, 820.0], 0x0D: [30.0, 31.0]}
    assert count_wrong({0x0C: [800.0, 820.0], 0x0D: [31.0]}, produced) == 0
    assert count_wrong({0x0C: [800.0, 31.0, 820.0]}, produced) == 1
    assert count_wrong({0x0C: [820.0, 800.0]}, produced) == 1


def test_a_multi_pid_request_is_checked_pid_by_pid(car: SimulatedVehicle) -> None:
    from fleetlink.edge.link.replies import mode_01_values

    link = Elm327Link(str(car.port), timeout_s=0.5)
    try:
        assert link.open() == "vehicle"
        reply = link.request(b"010C0D05")
        assert reply.kind == "ok"
        values = mode_01_values(reply.messages[0].data, [0x0C, 0x0D, 0x05])
        assert sorted(values) == [0x05, 0x0C, 0x0D]
        car.elm327.set_wrong_pid(1)
        assert link.query("SPEED").kind == "mismatch"
        assert link.query("SPEED").kind == "ok"
        assert link.counters["mismatched_replies"] == 1
    finally:
        link.close()
