"""Exact ELM327 reply strings for given requests, as a real v1.5 adapter prints them."""

from __future__ import annotations

import pytest

from fleetlink.simulator.elm327_interpreter import Elm327Interpreter
from fleetlink.simulator.vehicle import Vehicle

VIN = "1M8GDM9AXKP042788"


@pytest.fixture
def elm() -> Elm327Interpreter:
    vehicle = Vehicle(seed=1, vin=VIN, stored_dtcs=("P0301", "P0420", "C0035", "B1234"))
    vehicle.set_ignition(True)
    return Elm327Interpreter(vehicle)


def talk(elm: Elm327Interpreter, *commands: bytes) -> bytes:
    reply = b""
    for command in commands:
        reply = elm.handle(command).data
    return reply


def test_reset_prints_the_banner_with_echo_on(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATZ") == b"ATZ\r\r\rELM327 v1.5\r\r>"


def test_echo_off_is_itself_echoed_then_silent(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0") == b"ATE0\rOK\r\r>"
    assert talk(elm, b"ATI") == b"ELM327 v1.5\r\r>"


def test_linefeeds_on_end_lines_with_crlf(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATL1", b"ATI") == b"ELM327 v1.5\r\n\r\n>"


def test_read_voltage_answers_with_spaces_in_the_command(elm: Elm327Interpreter) -> None:
    elm.vehicle.step(1.0)
    assert talk(elm, b"ATE0", b"AT RV") == b"14.1V\r\r>"


def test_unknown_at_command_is_a_question_mark(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATXYZ") == b"?\r\r>"


def test_first_request_in_auto_mode_searches_then_answers(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATSP0", b"0100") == b"SEARCHING...\r41 00 9F FF 80 13\r\r>"
    assert talk(elm, b"ATDPN") == b"A6\r\r>"
    assert talk(elm, b"ATDP") == b"AUTO, ISO 15765-4 (CAN 11/500)\r\r>"


def test_single_frame_with_headers_shows_id_pci_and_padding(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATH1", b"0100") == (
        b"SEARCHING...\r7E8 06 41 00 9F FF 80 13 00\r\r>"
    )
    assert talk(elm, b"0120") == b"7E8 06 41 20 80 17 A0 11 00\r\r>"
    assert talk(elm, b"0140") == b"7E8 06 41 40 FE DC 00 55 00\r\r>"
    assert talk(elm, b"0160") == b"7E8 06 41 60 E0 00 00 00 00\r\r>"
    assert talk(elm, b"0180") == b"NO DATA\r\r>"


def test_vin_is_three_frames_with_headers_on(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATH1", b"0902") == (
        b"SEARCHING...\r"
        b"7E8 10 14 49 02 01 31 4D 38\r"
        b"7E8 21 47 44 4D 39 41 58 4B\r"
        b"7E8 22 50 30 34 32 37 38 38\r\r>"
    )


def test_vin_with_headers_off_prints_length_and_numbered_lines(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATH0", b"0902", b"0902") == (
        b"014\r0: 49 02 01 31 4D 38\r1: 47 44 4D 39 41 58 4B\r2: 50 30 34 32 37 38 38\r\r>"
    )
    assert talk(elm, b"ATS0", b"0902") == (
        b"014\r0:490201314D38\r1:47444D3941584B\r2:50303432373838\r\r>"
    )


def test_four_stored_codes_need_two_frames(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATH1", b"03", b"03") == (
        b"7E8 10 0A 43 04 03 01 04 20\r7E8 21 40 35 92 34 00 00 00\r\r>"
    )


def test_no_pending_codes_is_a_zero_count(elm: Elm327Interpreter) -> None:
    elm.vehicle.clear_dtcs()
    assert talk(elm, b"ATE0", b"ATH1", b"07", b"07") == b"7E8 02 47 00 00 00 00 00 00\r\r>"


def test_clear_codes_answers_44(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"04", b"04") == b"44\r\r>"
    assert elm.vehicle.snapshot().stored_dtcs == ()


def test_response_count_digit_is_accepted_and_unsupported_pids_are_dropped(
    elm: Elm327Interpreter,
) -> None:
    talk(elm, b"ATE0", b"0100")
    assert talk(elm, b"01001") == b"41 00 9F FF 80 13\r\r>"
    assert talk(elm, b"0100021") == b"41 00 9F FF 80 13\r\r>"
    assert talk(elm, b"0102") == b"NO DATA\r\r>"


def test_more_than_six_pids_is_refused(elm: Elm327Interpreter) -> None:
    talk(elm, b"ATE0", b"0100")
    assert talk(elm, b"01050C0D0F1011").startswith(b"00F\r0: 41 05")
    assert talk(elm, b"01050C0D0F10112F") == b"?\r\r>"


def test_empty_line_repeats_the_last_command(elm: Elm327Interpreter) -> None:
    assert talk(elm, b"ATE0", b"ATI", b"") == b"ELM327 v1.5\r\r>"


def test_ignition_off_before_a_protocol_is_found_is_unable_to_connect() -> None:
    elm = Elm327Interpreter(Vehicle(seed=1))
    assert talk(elm, b"ATE0", b"ATSP0", b"0100") == b"SEARCHING...\rUNABLE TO CONNECT\r\r>"
    assert talk(elm, b"AT RV") == b"12.4V\r\r>"


def test_ignition_off_after_a_protocol_was_found_is_no_data(elm: Elm327Interpreter) -> None:
    talk(elm, b"ATE0", b"0100")
    elm.vehicle.set_ignition(False)
    assert talk(elm, b"010C") == b"NO DATA\r\r>"


def test_a_header_no_ecu_listens_to_gets_no_data(elm: Elm327Interpreter) -> None:
    talk(elm, b"ATE0", b"0100")
    assert talk(elm, b"AT SH 7E1") == b"OK\r\r>"
    assert talk(elm, b"010C") == b"NO DATA\r\r>"
    assert talk(elm, b"ATSH7E0", b"010D") == b"41 0D 00\r\r>"
