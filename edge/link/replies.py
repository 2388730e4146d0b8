"""ELM327 replies: framing, and whether a reply answers the request that was sent.

Pure functions, no I/O. A reply is the text an ELM327 prints up to its ``>`` prompt;
:func:`classify` decides what it is: an answer to *this* request (service and PID/DID echo,
and the ECU's CAN header when headers are on), an ELM327 status such as ``NO DATA``, a
negative response (``7F``), garbage, or an answer to some other request (``mismatch``),
which must never be decoded as this one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from fleetlink.edge.link.python_obd import Frame, Message, obd

ReplyKind = Literal["ok", "silent", "null", "negative", "garbled", "mismatch"]

PROMPT = b">"

# What an ELM327 prints instead of data when the vehicle did not answer (datasheet, "Messages").
STATUS_MESSAGES = (
    "NO DATA",
    "CAN ERROR",
    "UNABLE TO CONNECT",
    "STOPPED",
    "BUS BUSY",
    "BUS ERROR",
    "DATA ERROR",
    "BUFFER FULL",
    "FB ERROR",
    "LV RESET",
    "ACT ALERT",
    "<RX ERROR",
    "<DATA ERROR",
    "ERR",
    "?",
)
TRUNCATED = "reply cut short"
_PROGRESS = re.compile(r"^(SEARCHING\.\.\.|BUS INIT:.*OK)$")
_BUS_INIT_FAILED = re.compile(r"^BUS INIT:.*ERROR$")
_HEX = re.compile(r"^[0-9A-F ]+$")
_MULTI_FRAME_INDEX = re.compile(r"^[0-9A-F]:")
_VOLTAGE = re.compile(r"^\d{1,2}(\.\d{1,2})?V$")
_CAN_PROTOCOLS = {"6": 11, "7": 29, "8": 11, "9": 29}

# Services whose positive response echoes the first request byte after the service (the PID,
# MID or test id), and those echoing two (a DID).
_ECHO_ONE = frozenset({0x01, 0x02, 0x05, 0x06, 0x08, 0x09})
_ECHO_TWO = frozenset({0x22})
NEGATIVE_RESPONSE = 0x7F
RESPONSE_PENDING = 0x78

NEGATIVE_RESPONSE_CODES = {
    0x10: "general reject",
    0x11: "service not supported",
    0x12: "sub-function not supported",
    0x13: "incorrect message length or format",
    0x21: "busy, repeat request",
    0x22: "conditions not correct (is the engine running?)",
    0x31: "request out of range",
    0x33: "security access denied",
    0x78: "response pending",
}


class ReplyMismatchError(ValueError):
    """Raised when reply bytes do not answer the request they are read against."""


@dataclass(frozen=True, slots=True)
class ObdRequest:
    """An OBD request as sent to the adapter: ``010C`` is service 0x01 with data ``0C``.

    A trailing odd hex digit (the ELM327's expected-response count, ``010C1``) is not data.
    """

    text: bytes
    service: int
    data: bytes

    @classmethod
    def parse(cls, text: bytes) -> ObdRequest:
        """Return the request for ``text``; raise ValueError when it is not hex bytes."""
        compact = text.replace(b" ", b"").upper()
        if not compact or not re.fullmatch(rb"[0-9A-F]+", compact):
            raise ValueError(f"{text!r} is not an OBD request (hex digits only)")
        if len(compact) % 2:
            compact = compact[:-1]
        if not compact:
            raise ValueError(f"{text!r} is not an OBD request (no service byte)")
        raw = bytes.fromhex(compact.decode("ascii"))
        return cls(text, raw[0], raw[1:])


@dataclass(frozen=True, slots=True)
class Classified:
    """What one reply turned out to be; ``messages`` are only those that answer the request."""

    kind: ReplyKind
    messages: list[Message] = field(default_factory=list)
    detail: str = ""
    negative_code: int | None = None


def split_lines(raw: bytes) -> list[str]:
    """Return the non-empty, stripped lines of a reply (prompt and NUL bytes removed).

    Bytes that are not ASCII become U+FFFD, so garbage stays visible as garbage.
    """
    text = raw.replace(b"\x00", b"").decode("ascii", "replace")
    text = text.removesuffix(">")
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


def _is_echo(line: str, request: bytes) -> bool:
    return line.replace(" ", "").upper() == request.replace(b" ", b"").decode("ascii", "replace")


def _status(line: str) -> str | None:
    upper = line.upper()
    if _BUS_INIT_FAILED.match(upper):
        return upper
    for message in STATUS_MESSAGES:
        if upper.startswith(message):
            return message
    return None


def mode_01_values(data: bytes | bytearray, requested: Sequence[int]) -> dict[int, bytes]:
    """Return each PID's data bytes from a mode 01 positive response (``41 0C 1A F8 0D 3C``).

    Every PID in the reply must be one that was ``requested`` (in any order, each at most
    once), and python-obd's command table gives each PID's length, so a reply to a different
    request, or one cut short, cannot be read as this one.

    Raises:
        ReplyMismatchError: the reply is not service 0x41, names a PID that was not asked for
            or one twice, has a PID of unknown length, or its length does not add up.
    """
    if not data or data[0] != 0x41:
        raise ReplyMismatchError("not a mode 01 response")
    wanted = set(requested)
    values: dict[int, bytes] = {}
    i = 1
    while i < len(data):
        pid = data[i]
        if pid not in wanted or pid in values:
            raise ReplyMismatchError(f"PID {pid:02X} was not requested (asked {_hexes(requested)})")
        if not obd.commands.has_pid(1, pid):
            raise ReplyMismatchError(f"PID {pid:02X} has no known length")
        size = obd.commands[1][pid].bytes - 2
        if size <= 0 or i + 1 + size > len(data):
            raise ReplyMismatchError(f"PID {pid:02X} is cut short")
        values[pid] = bytes(data[i + 1 : i + 1 + size])
        i += 1 + size
    return values


def _hexes(values: Sequence[int]) -> str:
    return " ".join(f"{v:02X}" for v in values)


def cut_short(message: Message, protocol_id: str) -> str:
    """Return why a CAN ``message`` holds fewer bytes than its first frame announced (frames
    lost on the way: ``BUFFER FULL``, a dropped consecutive frame), or "" when it is whole."""
    if protocol_id not in _CAN_PROTOCOLS or not message.frames:
        return ""
    first = message.frames[0]
    announced = first.data_len or 0
    # bytes carried by the frames themselves (python-obd shortens some services' data)
    pci = 2 if first.type == 0x10 else 1
    carried = len(first.data) - pci + sum(len(f.data) - 1 for f in message.frames[1:])
    if carried >= announced:
        return ""
    return f"{TRUNCATED}: {max(carried, 0)} of {announced} bytes"


def _header_ok(message: Message, protocol_id: str, target: int | None) -> bool:
    """Return True when every frame came from an ECU answering the tester (CAN only).

    11-bit: 7E8-7EF (exactly target + 8 when a physical target was set with ATSH);
    29-bit: 18 DA F1 xx (xx equal to the target's address when one was set).
    """
    bits = _CAN_PROTOCOLS.get(protocol_id)
    if bits is None:
        return True
    for frame in message.frames:
        raw = frame.raw.replace(" ", "")
        try:
            if bits == 11:
                header = int(raw[:3], 16)
                if not 0x7E8 <= header <= 0x7EF:
                    return False
                if target is not None and 0x7E0 <= target <= 0x7E7 and header != target + 8:
                    return False
            else:
                header = int(raw[:8], 16)
                if header >> 8 != 0x18DAF1:
                    return False
                if target is not None and header & 0xFF != (target >> 8) & 0xFF:
                    return False
        except ValueError:
            return False
    return True


def _answers(data: bytes | bytearray, request: ObdRequest) -> str | None:
    """Return why ``data`` does not answer ``request``, or None when it does."""
    if not data:
        return "empty message"
    if data[0] == NEGATIVE_RESPONSE:
        if len(data) < 3 or data[1] != request.service:
            return f"negative response to another service ({bytes(data[:3]).hex(' ')})"
        return None
    if data[0] != request.service + 0x40:
        return f"service {data[0]:02X} does not answer {request.service:02X}"
    if request.service == 0x01 and len(request.data) > 1:
        try:
            mode_01_values(data, request.data)
        except ReplyMismatchError as exc:
            return str(exc)
        return None
    if request.service == 0x02 and len(request.data) >= 2:
        if bytes(data[1:3]) != request.data[:2]:
            return f"freeze frame {bytes(data[1:3]).hex(' ')} answers another request"
        return None
    echo = 2 if request.service in _ECHO_TWO else 1 if request.service in _ECHO_ONE else 0
    if echo and bytes(data[1 : 1 + echo]) != request.data[:echo]:
        got = bytes(data[1 : 1 + echo]).hex(" ").upper() or "nothing"
        return f"echo {got} does not match {request.data[:echo].hex(' ').upper()}"
    return None


def classify(
    request: bytes,
    lines: Sequence[str],
    protocol: obd.protocols.protocol.Protocol,
    *,
    target: int | None = None,
) -> Classified:
    """Return what the reply ``lines`` to the OBD ``request`` (e.g. ``b"010C"``) are.

    ``protocol`` is the python-obd protocol parser of the link (headers on); ``target`` the
    CAN id set with ATSH for physical addressing (None: functional, any OBD ECU may answer).
    """
    parsed_request = ObdRequest.parse(request)
    kept = [ln for ln in lines if not _is_echo(ln, request) and not _PROGRESS.match(ln.upper())]
    if not kept:
        return Classified("null", detail="empty reply")
    data_lines = [ln for ln in kept if _HEX.match(ln.upper()) or _MULTI_FRAME_INDEX.match(ln)]
    statuses = [s for s in (_status(ln) for ln in kept if ln not in data_lines) if s]
    if len(data_lines) + len(statuses) < len(kept):
        return Classified("garbled", detail=f"unreadable: {' | '.join(kept)[:80]!r}")
    if not data_lines:
        return Classified("null", detail=statuses[0])
    messages = [m for m in protocol(data_lines) if m.parsed()]
    if not messages:
        return Classified("garbled", detail=f"no frame parses: {' | '.join(data_lines)[:80]!r}")
    protocol_id = str(getattr(protocol, "ELM_ID", ""))
    negative: int | None = None
    for message in messages:
        if not _header_ok(message, protocol_id, target):
            return Classified("mismatch", detail=f"reply from {message.frames[0].raw[:8]!r}")
        why = _answers(message.data, parsed_request)
        short = cut_short(message, protocol_id)
        if short and (why is None or why.endswith("is cut short")):
            return Classified("garbled", detail=short)
        if why is not None:
            return Classified("mismatch", detail=why)
        if message.data[0] == NEGATIVE_RESPONSE:
            negative = message.data[2]
    answers = [m for m in messages if m.data[0] != NEGATIVE_RESPONSE]
    if answers:
        return Classified("ok", answers)
    code = negative if negative is not None else 0
    return Classified(
        "negative",
        messages,
        detail=f"7F {parsed_request.service:02X} {code:02X}: "
        f"{NEGATIVE_RESPONSE_CODES.get(code, 'refused')}",
        negative_code=code,
    )


def classify_at(request: bytes, lines: Sequence[str]) -> Classified:
    """Return what the reply ``lines`` to the AT command ``request`` are.

    ``AT RV`` must answer a voltage, ``ATI``/``ATZ``/``AT@1`` text that is not OBD data,
    every other command ``OK``. A line of hex bytes (an OBD reply that belongs to an earlier
    request) is a mismatch. The kept lines travel as python-obd messages of one raw frame.
    """
    command = request.replace(b" ", b"").upper().decode("ascii", "replace")
    kept = [ln for ln in lines if not _is_echo(ln, request)]
    if not kept:
        return Classified("null", detail="empty reply")
    if any(_HEX.match(ln.upper()) and len(ln.replace(" ", "")) >= 4 for ln in kept):
        return Classified("mismatch", detail=f"OBD data in reply to {command}: {kept[0]!r}")
    if "\ufffd" in "".join(kept):
        return Classified("garbled", detail=f"unreadable: {' | '.join(kept)[:80]!r}")
    if kept == ["?"]:
        return Classified("null", detail=f"{command} not understood (?)")
    messages = [Message([Frame(ln)]) for ln in kept]
    if command == "ATRV":
        ok = len(kept) == 1 and _VOLTAGE.match(kept[0].upper()) is not None
    elif command in ("ATI", "ATZ", "ATWS", "AT@1", "ATDP", "ATDPN"):
        ok = "OK" not in kept
    else:
        ok = kept[-1].upper() == "OK"
    if ok:
        return Classified("ok", messages)
    return Classified("mismatch", messages, detail=f"{command} answered {' | '.join(kept)!r}")
