"""Trouble-code replies (services 03, 07, 0A): the codes, and whether the reply adds up.

On ISO 15765-4 (CAN) a reply is ``43 NN`` followed by NN two-byte codes. Some adapters drop
the count byte; python-obd then reads the first code's first byte as the count, keeps the
wrong number of bytes and reports a code nobody stored (``C0301`` for P0143 P0196 P0234).
:func:`read_codes` reads the bytes as the ECU sent them, checks the count byte against the
length, and against the number of stored codes PID 01 01 reported when it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetlink.edge.link.python_obd import Message, obd

_CAN_PROTOCOLS = frozenset({"6", "7", "8", "9"})
_LETTERS = "PCBU"


@dataclass(frozen=True, slots=True)
class Codes:
    """The codes of one reply, and what was noticed while reading them."""

    codes: list[str]
    count_byte: int | None
    count_byte_missing: bool = False
    warnings: list[str] = field(default_factory=list)


def dtc_code(high: int, low: int) -> str:
    """Return the code for two bytes (``0x01, 0x43`` -> ``P0143``)."""
    return f"{_LETTERS[high >> 6]}{(high >> 4) & 0x3}{high & 0xF:X}{low:02X}"


def description(code: str) -> str:
    """Return python-obd's description of ``code`` ("" when it has none)."""
    return str(obd.codes.DTC.get(code, ""))


def can_payload(message: Message) -> bytes:
    """Return a CAN message's ISO-TP payload exactly as the ECU sent it.

    python-obd shortens service 03 replies to the length their count byte announces, so the
    bytes are taken again from the frames (headers on: 4 padded header bytes, then the PCI).
    """
    frames = message.frames
    if len(frames) == 1:
        frame = frames[0]
        return bytes(frame.data[1 : 1 + (frame.data_len or 0)])
    first = next(f for f in frames if f.type == 0x10)
    rest = sorted((f for f in frames if f.type == 0x20), key=lambda f: f.seq_index)
    data = bytes(first.data[2:]) + b"".join(bytes(f.data[1:]) for f in rest)
    return data[: first.data_len or len(data)]


def _pairs(data: bytes) -> list[str]:
    return [
        dtc_code(data[i], data[i + 1])
        for i in range(0, len(data) - 1, 2)
        if (data[i], data[i + 1]) != (0, 0)
    ]


def read_codes(
    messages: Sequence[Message], protocol_id: str, stored_count: int | None = None
) -> Codes:
    """Return the codes in the positive ``messages`` of one service 03/07/0A reply.

    ``stored_count`` is the number PID 01 01 reported (service 03 only); when the count
    byte disagrees with the reply's length and reading the reply without it gives exactly
    that many codes, the adapter dropped it and the codes are read that way (and the
    warning says so). Any other disagreement is a warning, never silently accepted.
    """
    codes: list[str] = []
    warnings: list[str] = []
    if protocol_id not in _CAN_PROTOCOLS:
        # python-obd inserts a count of 0 for the older buses, whose replies carry none.
        codes = [c for m in messages for c in _pairs(bytes(m.data[2:]))]
        if stored_count is not None and stored_count != len(codes):
            warnings.append(
                f"PID 01 01 says {stored_count} codes are stored but the reply holds {len(codes)}"
            )
        return Codes(codes, None, warnings=warnings)
    announced = 0
    missing = False
    payloads = [can_payload(m) for m in messages]
    total_without = sum((len(p) - 1) // 2 for p in payloads)
    for payload in payloads:
        count = payload[1] if len(payload) > 1 else 0
        body = payload[2:]
        fits = len(body) == 2 * count
        without_count = payload[1:]
        if not fits and len(without_count) % 2 == 0 and stored_count in (None, total_without):
            missing = True
            codes += _pairs(without_count)
            announced += len(without_count) // 2
            continue
        if not fits:
            warnings.append(
                f"the reply announces {count} codes but carries {len(body)} bytes; "
                "its codes may be wrong"
            )
        codes += _pairs(body[: 2 * count] if len(body) >= 2 * count else body)
        announced += count
    if missing:
        warnings.append(
            "the adapter's reply has no ISO 15765-4 count byte; read without it"
            + (f", it holds the {stored_count} codes PID 01 01 reported" if stored_count else "")
        )
    if stored_count is not None and stored_count != len(codes):
        warnings.append(
            f"PID 01 01 says {stored_count} codes are stored but the adapter's reply holds "
            f"{len(codes)}: the reply does not add up"
        )
    return Codes(codes, announced, missing, warnings)
