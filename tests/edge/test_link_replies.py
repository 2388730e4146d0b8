"""Reply checks: recorded ELM327 replies, and generated ones, against the request sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from obd.protocols import ISO_15765_4_11bit_500k, ISO_15765_4_29bit_500k

from fleetlink.edge.link.replies import (
    ObdRequest,
    ReplyMismatchError,
    classify,
    classify_at,
    mode_01_values,
    split_lines,
)

CAN11 = ISO_15765_4_11bit_500k(["7E8 06 41 00 BE 3F A8 13"])
CAN29 = ISO_15765_4_29bit_500k(["18 DA F1 10 06 41 00 BE 3F A8 13"])


@pytest.mark.parametrize(
    ("request_", "reply", "kind"),
    [
        (b"010C", b"7E8 04 41 0C 1A F8 \r\r>", "ok"),
        (b"010D", b"7E8 03 41 0D 3C\r\r>", "ok"),
        (b"010C", b"7E8 04 41 0C 1A F8\r7EA 04 41 0C 1A F8\r\r>", "ok"),
        (b"010C", b"SEARCHING...\r7E8 04 41 0C 1A F8\r\r>", "ok"),
        (b"010C", b"010C\r7E8 04 41 0C 1A F8\r\r>", "ok"),
        (b"010C1", b"7E8 04 41 0C 1A F8\r\r>", "ok"),
        (b"010C", b"NO DATA\r\r>", "null"),
        (b"010C", b"CAN ERROR\r\r>", "null"),
        (b"010C", b"SEARCHING...\rUNABLE TO CONNECT\r\r>", "null"),
        (b"010C", b"?\r\r>", "null"),
        # a reply to another PID, to another service, from a tester, or unreadable
        (b"010C", b"7E8 03 41 0D 3C\r\r>", "mismatch"),
        (b"010C", b"7E8 03 41 05 7B\r\r>", "mismatch"),
        (b"010C", b"7E8 06 43 02 01 43 01 96\r\r>", "mismatch"),
        (b"03", b"7E8 04 41 0C 1A F8\r\r>", "mismatch"),
        (b"010C", b"7DF 04 41 0C 1A F8\r\r>", "mismatch"),
        (b"010C", b"7E8 03 7F 09 11\r\r>", "mismatch"),
        (b"0902", b"7E8 10 14 49 04 01 57 50 30\r7E8 21 5A 5A 5A 39 39 5A 54\r\r>", "mismatch"),
        (b"010C", b"ZZ 41 GARBAGE\r\r>", "garbled"),
        (b"010C", b"\x93\x11q\r\r>", "garbled"),
        # positive and negative answers to mode 03/04/09
        (b"03", b"7E8 06 43 02 01 43 01 96\r\r>", "ok"),
        (b"04", b"7E8 01 44\r\r>", "ok"),
        (b"04", b"7E8 03 7F 04 22\r\r>", "negative"),
        (
            b"0902",
            b"7E8 10 14 49 02 01 57 50 30\r7E8 21 5A 5A 5A 39 39 5A 54\r"
            b"7E8 22 31 32 33 34 35 36 37\r\r>",
            "ok",
        ),
        # a multi-frame reply that lost its last frame, and a single frame cut short
        (b"0902", b"7E8 10 14 49 02 01 57 50 30\r7E8 21 5A 5A 5A 39 39 5A 54\r\r>", "garbled"),
        (b"010C0D", b"7E8 05 41 0C 1A F8\r\r>", "garbled"),
    ],
)
def test_recorded_replies_are_classified_against_their_request(
    request_: bytes, reply: bytes, kind: str
) -> None:
    assert classify(request_, split_lines(reply), CAN11).kind == kind


def test_refused_clear_names_the_negative_response_code() -> None:
    result = classify(b"04", split_lines(b"7E8 03 7F 04 22\r\r>"), CAN11)
    assert result.negative_code == 0x22
    assert "conditions not correct" in result.detail


def test_physical_addressing_accepts_only_the_addressed_ecu() -> None:
    lines = split_lines(b"7EA 04 41 0C 1A F8\r\r>")
    assert classify(b"010C", lines, CAN11).kind == "ok"
    assert classify(b"010C", lines, CAN11, target=0x7E0).kind == "mismatch"
    assert classify(b"010C", lines, CAN11, target=0x7E2).kind == "ok"


def test_29_bit_replies_must_come_from_an_ecu_to_the_tester() -> None:
    ok = split_lines(b"18 DA F1 10 04 41 0C 1A F8\r\r>")
    to_other = split_lines(b"18 DA 10 F1 04 41 0C 1A F8\r\r>")
    assert classify(b"010C", ok, CAN29).kind == "ok"
    assert classify(b"010C", to_other, CAN29).kind == "mismatch"


@pytest.mark.parametrize(
    ("request_", "reply", "kind"),
    [
        (b"ATRV", b"14.1V\r\r>", "ok"),
        (b"ATRV", b"7E8 03 41 0D 3C\r\r>", "mismatch"),
        (b"ATRV", b"OK\r\r>", "mismatch"),
        (b"ATE0", b"ATE0\rOK\r\r>", "ok"),
        (b"ATH1", b"ELM327 v1.5\r\r>", "mismatch"),
        (b"ATI", b"ELM327 v1.5\r\r>", "ok"),
        (b"ATI", b"OK\r\r>", "mismatch"),
        (b"ATXY", b"?\r\r>", "null"),
        (b"ATI", b"\xfe\xfa\r\r>", "garbled"),
    ],
)
def test_at_replies_are_classified_against_their_command(
    request_: bytes, reply: bytes, kind: str
) -> None:
    assert classify_at(request_, split_lines(reply)).kind == kind


def test_multi_pid_reply_splits_into_each_requested_pid() -> None:
    data = bytes.fromhex("410C1AF80D3C057B")
    assert mode_01_values(data, [0x0C, 0x0D, 0x05]) == {
        0x0C: bytes.fromhex("1AF8"),
        0x0D: bytes.fromhex("3C"),
        0x05: bytes.fromhex("7B"),
    }
    with pytest.raises(ReplyMismatchError):
        mode_01_values(data, [0x0C, 0x0D])
    with pytest.raises(ReplyMismatchError):
        mode_01_values(data[:-1], [0x0C, 0x0D, 0x05])


def test_a_request_that_is_not_hex_is_refused() -> None:
    with pytest.raises(ValueError, match="not an OBD request"):
        ObdRequest.parse(b"ATRV")


PIDS_WITH_ONE_BYTE = [0x04, 0x05, 0x0B, 0x0D, 0x0F, 0x11, 0x2F, 0x33, 0x46]
PIDS_WITH_TWO_BYTES = [0x0C, 0x10, 0x1F, 0x21, 0x31, 0x42]


def _frame(pid: int, value: bytes) -> bytes:
    payload = bytes((0x41, pid)) + value
    return (
        b"7E8 "
        + bytes((len(payload),)).hex().upper().encode()
        + b" "
        + payload.hex(" ").upper().encode()
    )


@given(
    asked=st.sampled_from(PIDS_WITH_ONE_BYTE + PIDS_WITH_TWO_BYTES),
    answered=st.sampled_from(PIDS_WITH_ONE_BYTE + PIDS_WITH_TWO_BYTES),
    value=st.binary(min_size=2, max_size=2),
)
def test_a_reply_is_ok_exactly_when_it_echoes_the_requested_pid(
    asked: int, answered: int, value: bytes
) -> None:
    size = 1 if answered in PIDS_WITH_ONE_BYTE else 2
    reply = _frame(answered, value[:size]) + b"\r\r>"
    kind = classify(f"01{asked:02X}".encode(), split_lines(reply), CAN11).kind
    assert kind == ("ok" if asked == answered else "mismatch")


@given(st.binary(max_size=40))
def test_any_bytes_classify_without_raising(raw: bytes) -> None:
    result = classify(b"010C", split_lines(raw + b">"), CAN11)
    assert result.kind in ("ok", "null", "garbled", "mismatch", "negative")
    if result.kind == "ok":
        assert all(m.data[:2] == b"\x41\x0c" for m in result.messages)


@given(
    pids=st.lists(
        st.sampled_from(PIDS_WITH_ONE_BYTE + PIDS_WITH_TWO_BYTES),
        min_size=1,
        max_size=6,
        unique=True,
    ),
    data=st.data(),
)
def test_multi_pid_replies_round_trip(pids: list[int], data: st.DataObject) -> None:
    values = {
        pid: data.draw(st.binary(min_size=s, max_size=s))
        for pid in pids
        for s in [1 if pid in PIDS_WITH_ONE_BYTE else 2]
    }
    order = data.draw(st.permutations(pids))
    payload = b"\x41" + b"".join(bytes((p,)) + values[p] for p in order)
    assert mode_01_values(payload, pids) == values
