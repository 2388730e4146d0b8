"""The simulated ELM327 honours ATST/ATAT and response counts, can act as a clone that
refuses timing commands, and prints injected error replies."""

from __future__ import annotations

import pytest

from fleetlink.simulator.elm327_interpreter import (
    CLONE_REJECTED_AT,
    ST_STEP_S,
    Elm327Interpreter,
)
from fleetlink.simulator.vehicle import Vehicle


@pytest.fixture
def elm() -> Elm327Interpreter:
    vehicle = Vehicle(1)
    vehicle.set_ignition(True)
    interpreter = Elm327Interpreter(vehicle)
    for command in (b"ATE0", b"ATH1", b"ATSP6"):
        interpreter.handle(command)
    return interpreter


def test_a_response_count_ends_the_wait_and_adaptive_timing_shortens_it(
    elm: Elm327Interpreter,
) -> None:
    counted = elm.handle(b"010C0D1")
    assert counted.frames == 1 and elm.wait_after_s(counted, 0.03) == 0.0
    plain = elm.handle(b"010C0D")
    assert elm.wait_after_s(plain, 0.03) == pytest.approx(2 * 0.03 + 0.008)  # ATAT1 default
    elm.handle(b"ATAT2")
    assert elm.wait_after_s(plain, 0.03) == pytest.approx(0.034)
    elm.handle(b"ATAT0")
    assert elm.wait_after_s(plain, 0.03) == pytest.approx(0x32 * ST_STEP_S)
    elm.handle(b"ATST0A")
    assert elm.wait_after_s(plain, 0.03) == pytest.approx(10 * ST_STEP_S)
    elm.handle(b"ATZ")
    assert (elm.settings.timeout_st, elm.settings.adaptive) == (0x32, 1)


def test_a_multi_frame_answer_counts_its_frames(elm: Elm327Interpreter) -> None:
    reply = elm.handle(b"010C0D050411")  # 11 bytes: a first frame and one more
    assert reply.frames == 2 and reply.data.count(b"7E8") == 2


def test_a_clone_answers_question_marks_to_timing_commands(elm: Elm327Interpreter) -> None:
    elm.quirks.rejected_at = CLONE_REJECTED_AT
    for command in (b"ATAT2", b"ATAT1", b"ATST19"):
        assert elm.handle(command).data.startswith(b"?")
    assert elm.handle(b"ATH1").data.startswith(b"OK")


@pytest.mark.parametrize("message", ["?", "BUFFER FULL", "CAN ERROR", "STOPPED"])
def test_injected_error_replies_come_once_each(elm: Elm327Interpreter, message: str) -> None:
    elm.quirks.faults.append(message)
    assert elm.handle(b"010C").data.startswith(message.encode() + b"\r")
    assert elm.handle(b"010C").data.startswith(b"7E8 04 41 0C")


def test_a_truncated_reply_loses_its_last_frame(elm: Elm327Interpreter) -> None:
    elm.quirks.faults.append("TRUNCATED")
    cut = elm.handle(b"0902")
    assert cut.payload is None and cut.data.count(b"7E8") == 2  # three frames, one lost
    assert elm.handle(b"0902").data.count(b"7E8") == 3
