"""The pty transport: latency, counters, fault injection and the port disappearing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import serial

from fleetlink.simulator.elm327 import Elm327Emulator, EmulatorStateError
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.vehicle import Vehicle


def ask(port: serial.Serial, command: bytes) -> bytes:
    port.write(command + b"\r")
    return port.read_until(b">")


@pytest.fixture
def emulator() -> Iterator[Elm327Emulator]:
    vehicle = Vehicle(seed=5)
    vehicle.set_ignition(True)
    with Elm327Emulator(vehicle, latency_s=0.0) as emu:
        yield emu


@pytest.fixture
def client(emulator: Elm327Emulator) -> Iterator[serial.Serial]:
    assert emulator.port is not None
    with serial.Serial(emulator.port, timeout=1.0) as port:
        assert ask(port, b"ATE0").endswith(b"OK\r\r>")
        yield port


def test_each_obd_request_takes_at_least_the_latency() -> None:
    vehicle = Vehicle(seed=5)
    vehicle.set_ignition(True)
    with (
        Elm327Emulator(vehicle, latency_s=0.05) as emu,
        serial.Serial(emu.port, timeout=1.0) as port,
    ):
        ask(port, b"ATE0")
        ask(port, b"0100")
        started = time.monotonic()
        for _ in range(5):
            assert ask(port, b"010C").startswith(b"41 0C")
        assert (time.monotonic() - started) / 5 >= 0.05
        started = time.monotonic()
        ask(port, b"ATI")
        assert time.monotonic() - started < 0.05  # AT commands do not wait for the bus


def test_requests_are_counted_per_mode(emulator: Elm327Emulator, client: serial.Serial) -> None:
    for command in (b"0100", b"010C", b"010D", b"03", b"0902"):
        ask(client, command)
    assert emulator.requests_by_mode == {1: 3, 3: 1, 9: 1}
    assert emulator.at_commands_served == 1


def test_garbled_replies_are_garbage_then_normal_again(
    emulator: Elm327Emulator, client: serial.Serial
) -> None:
    emulator.set_garbled(2)
    for _ in range(2):
        reply = ask(client, b"010C")
        assert reply.endswith(b">") and b"41 0C" not in reply
        assert any(b >= 0x80 for b in reply)
    assert ask(client, b"010C").startswith(b"41 0C")


def test_silent_emulator_answers_nothing_until_resumed(
    emulator: Elm327Emulator, client: serial.Serial
) -> None:
    emulator.set_silent(True)
    client.timeout = 0.3
    assert ask(client, b"010C") == b""
    emulator.set_silent(False)
    client.timeout = 1.0
    assert ask(client, b"ATI") == b"ELM327 v1.5\r\r>"


def test_stopping_makes_the_port_disappear() -> None:
    vehicle = Vehicle(seed=5)
    emu = Elm327Emulator(vehicle, latency_s=0.0)
    port = emu.start()
    assert os.path.exists(port)
    emu.stop()
    assert not os.path.exists(port)
    with pytest.raises(EmulatorStateError):
        emu.start()


def test_stopping_under_an_open_client_breaks_its_reads() -> None:
    emu = Elm327Emulator(Vehicle(seed=5), latency_s=0.0)
    with serial.Serial(emu.start(), timeout=1.0) as port:
        emu.stop()
        with pytest.raises(serial.SerialException):
            port.write(b"ATI\r")
            port.read(1)


def test_simulated_vehicle_drives_in_real_time_behind_its_port() -> None:
    with SimulatedVehicle(seed=2, style=1.0, latency_s=0.0, speed_factor=20.0) as sim:
        assert sim.port is not None
        time.sleep(1.0)
        state = sim.snapshot()
        assert 10.0 <= state.time_s <= 25.0
        assert state.engine_running
        with serial.Serial(sim.port, timeout=1.0) as port:
            ask(port, b"ATE0")
            assert ask(port, b"0902").startswith(b"SEARCHING...\r014\r0: 49 02 01")


def test_simulated_vehicle_can_start_with_the_ignition_off() -> None:
    with SimulatedVehicle(seed=2, latency_s=0.0, ignition_on=False) as sim:
        assert sim.port is not None
        with serial.Serial(sim.port, timeout=1.0) as port:
            ask(port, b"ATE0")
            assert ask(port, b"0100") == b"SEARCHING...\rUNABLE TO CONNECT\r\r>"
            sim.set_ignition(True)
            assert ask(port, b"0100").startswith(b"SEARCHING...\r41 00")


def test_a_stall_holds_every_request_then_answers_them_in_order(
    emulator: Elm327Emulator, client: serial.Serial
) -> None:
    ask(client, b"0100")
    emulator.stall(0.6)
    assert emulator.stalled
    client.timeout = 0.2
    for command in (b"010C", b"010D", b"0105"):
        assert ask(client, command) == b""
    client.timeout = 2.0
    replies = [client.read_until(b">") for _ in range(3)]
    assert [r[:5] for r in replies] == [b"41 0C", b"41 0D", b"41 05"]
    assert not emulator.stalled
    assert ask(client, b"010C").startswith(b"41 0C")


def test_wrong_pid_mode_answers_another_pid_then_the_right_one_again(
    emulator: Elm327Emulator, client: serial.Serial
) -> None:
    ask(client, b"0100")
    emulator.set_wrong_pid(2)
    assert ask(client, b"010C").startswith(b"41 0D")
    assert ask(client, b"010D").startswith(b"41 0C")
    assert ask(client, b"010C").startswith(b"41 0C")
    served = emulator.served()
    assert [request for request, _ in served[-3:]] == ["010D", "010C", "010C"]
    assert [payload[:2] for _, payload in served[-3:]] == [b"\x41\x0d", b"\x41\x0c", b"\x41\x0c"]


def test_quirks_drop_the_dtc_count_byte_and_refuse_a_clear(
    emulator: Elm327Emulator, client: serial.Serial
) -> None:
    emulator.vehicle.add_dtc("P0143")
    emulator.quirks.omit_dtc_count = True
    assert ask(client, b"03").startswith(b"SEARCHING...\r43 01 43\r")
    emulator.quirks.refuse_clear = True
    assert ask(client, b"04") == b"7F 04 22\r\r>"
    assert emulator.vehicle.snapshot().stored_dtcs == ("P0143",)


def test_an_adapter_at_a_fixed_baud_rate_hears_only_that_rate() -> None:
    vehicle = Vehicle(seed=5)
    with (
        Elm327Emulator(vehicle, latency_s=0.0, baudrate=115200) as emu,
        serial.Serial(emu.port, 38400, timeout=0.3) as port,
    ):
        assert ask(port, b"ATI") == b""
        port.baudrate = 115200
        port.reset_input_buffer()
        assert ask(port, b"ATI").endswith(b"ELM327 v1.5\r\r>")
