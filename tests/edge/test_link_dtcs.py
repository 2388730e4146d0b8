"""Trouble-code replies: recorded CAN replies, and generated ones with and without the
ISO 15765-4 count byte, read and checked against PID 01 01's count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from obd.protocols import ISO_9141_2, ISO_15765_4_11bit_500k

from fleetlink.edge.link.dtcs import description, dtc_code, read_codes
from fleetlink.edge.link.replies import classify, split_lines
from fleetlink.simulator import isotp
from fleetlink.simulator.j1979 import encode_dtc, encode_dtc_list

CAN11 = ISO_15765_4_11bit_500k(["7E8 06 41 00 BE 3F A8 13"])


def _messages(payload: bytes) -> list:  # type: ignore[type-arg]
    lines = isotp.elm_lines(isotp.segment(payload), can_id=0x7E8, headers=True, spaces=True)
    result = classify(b"03", lines, CAN11)
    assert result.kind == "ok", result.detail
    return result.messages


def test_a_recorded_two_frame_reply_reads_every_code() -> None:
    reply = b"7E8 10 0A 43 04 03 01 04 20\r7E8 21 40 35 92 34 00 00 00\r\r>"
    messages = classify(b"03", split_lines(reply), CAN11).messages
    codes = read_codes(messages, "6", stored_count=4)
    assert codes.codes == ["P0301", "P0420", "C0035", "B1234"]
    assert codes.warnings == [] and not codes.count_byte_missing


def test_a_reply_without_its_count_byte_is_not_read_as_c0301() -> None:
    reply = b"7E8 07 43 01 43 01 96 02 34\r\r>"
    messages = classify(b"03", split_lines(reply), CAN11).messages
    codes = read_codes(messages, "6", stored_count=3)
    assert codes.codes == ["P0143", "P0196", "P0234"]
    assert codes.count_byte_missing
    assert [description(c) != "" for c in codes.codes] == [True, True, True]


def test_a_reply_that_does_not_add_up_says_so() -> None:
    messages = _messages(encode_dtc_list(0x03, ["P0301"]))
    codes = read_codes(messages, "6", stored_count=2)
    assert codes.codes == ["P0301"]
    assert "PID 01 01 says 2 codes are stored" in codes.warnings[0]


def test_older_buses_carry_no_count_byte() -> None:
    protocol = ISO_9141_2(["48 6B 10 41 00 BE 3F A8 13 00"])
    result = classify(b"03", ["48 6B 10 43 01 43 01 96 02 34 00"], protocol)
    assert read_codes(result.messages, "3", stored_count=3).codes == ["P0143", "P0196", "P0234"]


CODES = st.builds(
    lambda letter, first, rest: f"{letter}{first}{rest:03X}",
    st.sampled_from("PCBU"),
    st.integers(0, 3),
    st.integers(1, 0xFFF),
)


@given(st.lists(CODES, max_size=20))
def test_codes_round_trip_with_the_count_byte(codes: list[str]) -> None:
    if not codes:
        return
    read = read_codes(_messages(encode_dtc_list(0x03, codes)), "6", stored_count=len(codes))
    assert read.codes == codes and read.warnings == []


@given(st.lists(CODES, min_size=1, max_size=20))
def test_codes_round_trip_without_the_count_byte(codes: list[str]) -> None:
    payload = bytes((0x43,)) + b"".join(encode_dtc(c) for c in codes)
    # without the count byte the payload's length is odd, so no code byte can pass for a count
    read = read_codes(_messages(payload), "6", stored_count=len(codes))
    assert read.codes == codes and read.count_byte_missing


@given(st.integers(0, 0xFF), st.integers(0, 0xFF))
def test_two_bytes_make_one_code(high: int, low: int) -> None:
    code = dtc_code(high, low)
    assert len(code) == 5 and code[0] in "PCBU"
    if (high, low) != (0, 0):
        assert encode_dtc(code) == bytes((high, low))
