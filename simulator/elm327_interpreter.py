"""The ELM327 command interpreter: one request line in, the adapter's exact reply bytes out.

It holds the adapter's settings (echo, headers, linefeeds, spaces, protocol, response timing,
header and receive filter) and answers OBD requests as a single engine ECU at 7E8 on ISO
15765-4 CAN 11-bit 500 kbit/s (protocol 6). Loaded with an OBDb signalset
(:class:`~fleetlink.simulator.obdb_ecus.ObdbEcus`), it also answers mode 22 requests on each
ECU's header (``ATSH``; 29-bit ones after ``ATSP7`` with ``ATCP`` priority), printing only the
frames ``ATCRA`` lets through. It does no I/O and no waiting; ``simulator.elm327`` puts it on a
pseudo-terminal and waits as the timing settings say (:meth:`Elm327Interpreter.wait_after_s`).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetlink.simulator import dtcs, isotp, j1979
from fleetlink.simulator.obdb_ecus import ObdbEcus
from fleetlink.simulator.vehicle import Vehicle, VehicleState

VERSION = "ELM327 v1.5"
DEVICE_DESCRIPTION = "OBDII to RS232 Interpreter"
ECU_RESPONSE_ID = 0x7E8
_ACCEPTED_REQUEST_IDS = frozenset({0x7DF, 0x7E0})
_VEHICLE_PROTOCOL = "6"
# the 29-bit twin on the same bus, for ECUs with 29-bit diagnostic ids (OBDb "DA1A" headers)
_EXTENDED_PROTOCOL = "7"
_MAX_MODE_01_PIDS = 6
# ATST's unit, and its value after ATZ (0x32: about 200 ms).
ST_STEP_S = 0.004096
_DEFAULT_ST = 0x32
# A cheap clone (a v1.5 banner on older firmware): no adaptive timing, no ATST.
CLONE_REJECTED_AT = frozenset({"AT0", "AT1", "AT2", "ST"})
# Faults an adapter prints instead of data (datasheet, "Messages"), injectable one by one;
# TRUNCATED cuts the last frame off a multi-frame reply (or bytes off a single frame).
ERROR_REPLIES = ("?", "BUFFER FULL", "CAN ERROR", "STOPPED", "TRUNCATED")
_PROTOCOL_NAMES = {
    "0": "AUTO",
    "1": "SAE J1850 PWM",
    "2": "SAE J1850 VPW",
    "3": "ISO 9141-2",
    "4": "ISO 14230-4 (KWP 5BAUD)",
    "5": "ISO 14230-4 (KWP FAST)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
    "A": "SAE J1939 (CAN 29/250)",
    "B": "USER1 CAN (11* /125)",
    "C": "USER2 CAN (11* /50)",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """What the adapter sends back: ``data`` ends with the ``>`` prompt.

    ``obd_mode`` is the service of an OBD request (None for AT commands), so the transport
    knows to apply the bus latency and count the request; ``payload`` is the ECU's answer
    (service byte first) when there was one, so tests can compare what arrives with it.
    """

    data: bytes
    obd_mode: int | None = None
    payload: bytes | None = None
    frames: int = 0
    responses_expected: int | None = None


@dataclass(slots=True)
class Settings:
    """The adapter's user-settable state, as after ATZ."""

    echo: bool = True
    headers: bool = False
    linefeeds: bool = False
    spaces: bool = True
    protocol: str = "0"
    auto_protocol: bool = True
    established: bool = False
    request_id: int = 0x7DF
    priority: int = 0x18
    receive_filter: int | None = None
    timeout_st: int = _DEFAULT_ST
    adaptive: int = 1


@dataclass(slots=True)
class Quirks:
    """Ways real adapters and ECUs depart from the standard, switched on by tests.

    ``omit_dtc_count``: the adapter drops the ISO 15765-4 count byte of mode 03/07/0A replies
    (seen on clones). ``refuse_clear``: the ECU answers mode 04 with ``7F 04 22``
    (conditions not correct) and keeps its codes. ``rejected_at``: AT commands (without
    ``AT``; a prefix such as ``ST`` covers ``ST19``) answered ``?`` as clones do
    (:data:`CLONE_REJECTED_AT`). ``faults``: replies from :data:`ERROR_REPLIES` given instead
    of the next OBD answers, one each, in order.
    """

    omit_dtc_count: bool = False
    refuse_clear: bool = False
    rejected_at: frozenset[str] = frozenset()
    faults: deque[str] = field(default_factory=deque)


class Elm327Interpreter:
    """Interprets ELM327 commands against ``vehicle``; not thread-safe (one serial line)."""

    def __init__(self, vehicle: Vehicle, obdb: ObdbEcus | None = None) -> None:
        self.vehicle = vehicle
        self.obdb = obdb
        self.settings = Settings()
        self.quirks = Quirks()
        self._last_command = ""
        self._at_handlers: list[tuple[re.Pattern[str], Callable[[re.Match[str]], list[str]]]] = [
            (re.compile(r"Z"), self._reset),
            (re.compile(r"WS"), self._reset),
            (re.compile(r"D"), self._defaults),
            (re.compile(r"I"), lambda m: [VERSION]),
            (re.compile(r"@1"), lambda m: [DEVICE_DESCRIPTION]),
            (re.compile(r"E([01])"), lambda m: self._set("echo", m)),
            (re.compile(r"H([01])"), lambda m: self._set("headers", m)),
            (re.compile(r"L([01])"), lambda m: self._set("linefeeds", m)),
            (re.compile(r"S([01])"), lambda m: self._set("spaces", m)),
            (re.compile(r"RV"), self._read_voltage),
            (re.compile(r"SP(A?)([0-9A-C])"), self._set_protocol),
            (re.compile(r"TP(A?)([0-9A-C])"), self._try_protocol),
            (re.compile(r"DPN"), self._describe_protocol_number),
            (re.compile(r"DP"), self._describe_protocol),
            (re.compile(r"SH([0-9A-F]{3}|[0-9A-F]{6})"), self._set_header),
            (re.compile(r"CP([0-9A-F]{2})"), self._set_priority),
            (re.compile(r"CRA([0-9A-F]{3}|[0-9A-F]{8})?"), self._set_receive_filter),
            (re.compile(r"AR"), self._set_receive_filter),
            (re.compile(r"FCSH([0-9A-F]{3}|[0-9A-F]{6,8})"), lambda m: ["OK"]),
            (re.compile(r"ST([0-9A-F]{1,2})"), self._set_timeout),
            (re.compile(r"AT([0-2])"), self._set_adaptive),
            (re.compile(r"M[01]|CAF[01]|AL|NL|PC|LP"), self._ok_and_maybe_close),
        ]

    # ---------------------------------------------------------------- public

    def handle(self, raw: bytes) -> Reply:
        """Return the reply to one command line (without its terminating CR).

        An empty line repeats the previous command, as the ELM327 does.
        """
        text = raw.decode("ascii", "replace")
        command = "".join(text.split()).upper()
        if not command:
            command = self._last_command
        else:
            self._last_command = command
        echo = text + self._eol if self.settings.echo else ""
        if command.startswith("AT"):
            lines = self._at(command[2:])
            if command[2:] in ("Z", "WS"):
                # ATZ prints two blank lines before the banner while the chip restarts.
                return Reply((echo + self._eol * 2 + self._format(lines)).encode("ascii"))
            return Reply((echo + self._format(lines)).encode("ascii"))
        expected = None
        if re.fullmatch(r"[0-9A-F]{3,}", command) and len(command) % 2:
            # An odd trailing digit is the number of responses to wait for.
            expected = int(command[-1], 16)
            command = command[:-1]
        mode, lines, payload, frames = self._obd(command)
        data = (echo + self._format(lines)).encode("ascii")
        return Reply(data, mode, payload, frames, expected)

    # --------------------------------------------------------------- framing

    @property
    def _eol(self) -> str:
        return "\r\n" if self.settings.linefeeds else "\r"

    def _format(self, lines: list[str]) -> str:
        eol = self._eol
        return "".join(line + eol for line in lines) + eol + ">"

    # ------------------------------------------------------------ AT command

    def wait_after_s(self, reply: Reply, ecu_latency_s: float) -> float:
        """Return how long the adapter listens for more ECUs after the last frame of ``reply``.

        With a response count (``010C1``) it stops as soon as that many frames came. Else it
        waits ATST; adaptive timing shortens that to what it measured of the ECU (ATAT1:
        twice its response time, ATAT2: once, plus a few ms), never beyond ATST. ``NO DATA``
        is printed after the full ATST.
        """
        if reply.obd_mode is None:
            return 0.0
        timeout_s = self.settings.timeout_st * ST_STEP_S
        if reply.frames == 0:
            return timeout_s
        if reply.responses_expected is not None and reply.frames >= reply.responses_expected:
            return 0.0
        if self.settings.adaptive == 1:
            return min(timeout_s, 2 * ecu_latency_s + 0.008)
        if self.settings.adaptive == 2:
            return min(timeout_s, ecu_latency_s + 0.004)
        return timeout_s

    def _at(self, command: str) -> list[str]:
        if any(command.startswith(rejected) for rejected in self.quirks.rejected_at):
            return ["?"]
        for pattern, handler in self._at_handlers:
            match = pattern.fullmatch(command)
            if match:
                return handler(match)
        return ["?"]

    def _reset(self, _: re.Match[str]) -> list[str]:
        self.settings = Settings()
        return [VERSION]

    def _defaults(self, _: re.Match[str]) -> list[str]:
        self.settings = Settings()
        return ["OK"]

    def _set(self, name: str, match: re.Match[str]) -> list[str]:
        setattr(self.settings, name, match.group(1) == "1")
        return ["OK"]

    def _set_timeout(self, match: re.Match[str]) -> list[str]:
        self.settings.timeout_st = int(match.group(1), 16) or _DEFAULT_ST
        return ["OK"]

    def _set_adaptive(self, match: re.Match[str]) -> list[str]:
        self.settings.adaptive = int(match.group(1))
        return ["OK"]

    def _read_voltage(self, _: re.Match[str]) -> list[str]:
        return [f"{self.vehicle.snapshot().battery_v:.1f}V"]

    def _set_protocol(self, match: re.Match[str]) -> list[str]:
        number = match.group(2)
        self.settings.protocol = number
        self.settings.auto_protocol = number == "0" or match.group(1) == "A"
        self.settings.established = False
        return ["OK"]

    def _try_protocol(self, match: re.Match[str]) -> list[str]:
        self.settings.protocol = match.group(2)
        self.settings.auto_protocol = True
        self.settings.established = False
        return ["OK"]

    def _describe_protocol_number(self, _: re.Match[str]) -> list[str]:
        return [("A" if self.settings.auto_protocol else "") + self.settings.protocol]

    def _describe_protocol(self, _: re.Match[str]) -> list[str]:
        name = _PROTOCOL_NAMES[self.settings.protocol]
        if self.settings.auto_protocol and self.settings.protocol != "0":
            return [f"AUTO, {name}"]
        return [name]

    def _set_header(self, match: re.Match[str]) -> list[str]:
        value = int(match.group(1), 16)
        if len(match.group(1)) == 6:
            value |= self.settings.priority << 24
        self.settings.request_id = value
        return ["OK"]

    def _set_priority(self, match: re.Match[str]) -> list[str]:
        self.settings.priority = int(match.group(1), 16) & 0x1F
        if self.settings.request_id > 0x7FF:
            self.settings.request_id = (self.settings.priority << 24) | (
                self.settings.request_id & 0xFFFFFF
            )
        return ["OK"]

    def _set_receive_filter(self, match: re.Match[str]) -> list[str]:
        """ATCRA hhh / ATCRA hhhhhhhh: print only frames from that id; ATCRA or ATAR: all."""
        text = match.group(1) if match.re.groups else None
        self.settings.receive_filter = int(text, 16) if text else None
        return ["OK"]

    def _ok_and_maybe_close(self, match: re.Match[str]) -> list[str]:
        if match.group(0) == "PC":
            self.settings.established = False
        return ["OK"]

    # ----------------------------------------------------------- OBD request

    def _obd(self, command: str) -> tuple[int | None, list[str], bytes | None, int]:
        """Return the mode, the lines printed, the ECU's payload and its number of frames."""
        if not re.fullmatch(r"[0-9A-F]{2,}", command) or len(command) % 2:
            return None, ["?"], None, 0
        request = bytes.fromhex(command)
        mode = request[0]
        if mode == 0x01 and len(request) - 1 > _MAX_MODE_01_PIDS:
            return mode, ["?"], None, 0
        prefix, reachable = self._bus_state()
        if not reachable:
            return mode, prefix, None, 0
        fault = self.quirks.faults.popleft() if self.quirks.faults else None
        if fault is not None and fault != "TRUNCATED":
            return mode, [*prefix, fault], None, 0
        reply_id = ECU_RESPONSE_ID
        if mode == 0x22 and self.obdb is not None:
            answer = self._answer_obdb(request)
            payload = None if answer is None else answer[1]
            reply_id = reply_id if answer is None else answer[0]
        else:
            payload = self._answer(request, self.vehicle.snapshot())
        if payload is None:
            return mode, [*prefix, "NO DATA"], None, 0
        segmented = isotp.segment(payload)
        lines = isotp.elm_lines(
            segmented,
            can_id=reply_id,
            headers=self.settings.headers,
            spaces=self.settings.spaces,
            extended=reply_id > 0x7FF,
        )
        frames = len(segmented.frames)
        if fault == "TRUNCATED":
            lines = lines[:-1] if frames > 1 else [lines[0][:-6]]
            return mode, prefix + lines, None, frames - 1 if frames > 1 else 1
        return mode, prefix + lines, payload, frames

    def _answer_obdb(self, request: bytes) -> tuple[int, bytes] | None:
        """Mode 22 to the addressed ECU: None when none answers or ATCRA filters it out."""
        assert self.obdb is not None
        s = self.settings
        if (s.request_id > 0x7FF) != (s.protocol == _EXTENDED_PROTOCOL):
            return None  # an 11-bit header on the 29-bit protocol or the other way round
        answer = self.obdb.answer(s.request_id, request, self.vehicle.snapshot())
        if answer is None or (s.receive_filter is not None and answer[0] != s.receive_filter):
            return None
        return answer

    def _bus_state(self) -> tuple[list[str], bool]:
        """Return the lines printed before the answer, and whether the ECU can answer."""
        s = self.settings
        ignition = self.vehicle.snapshot().ignition_on
        if s.established:
            return ([], True) if ignition else (["NO DATA"], False)
        searching = ["SEARCHING..."] if s.auto_protocol else []
        protocols = {_VEHICLE_PROTOCOL} | ({_EXTENDED_PROTOCOL} if self.obdb else set())
        if not ignition or (not s.auto_protocol and s.protocol not in protocols):
            return [*searching, "UNABLE TO CONNECT"], False
        if s.auto_protocol:
            s.protocol = _VEHICLE_PROTOCOL
        s.established = True
        return searching, True

    def _answer(self, request: bytes, state: VehicleState) -> bytes | None:
        if self.settings.request_id not in _ACCEPTED_REQUEST_IDS:
            return None
        mode, pids = request[0], request[1:]
        if mode == 0x01:
            parts = []
            for pid in pids:
                data = j1979.encode_mode_01(pid, state)
                if data is not None:
                    parts.append(bytes((pid,)) + data)
            return bytes((0x41,)) + b"".join(parts) if parts else None
        if mode in (0x03, 0x07, 0x0A) and not pids:
            codes = {
                0x03: state.stored_dtcs,
                0x07: state.pending_dtcs,
                0x0A: state.permanent_dtcs,
            }[mode]
            encoded = j1979.encode_dtc_list(mode, codes)
            if self.quirks.omit_dtc_count:
                return encoded[:1] + encoded[2:]
            return encoded
        if mode == 0x04 and not pids:
            if self.quirks.refuse_clear:
                return bytes((0x7F, 0x04, 0x22))
            self.vehicle.clear_dtcs()
            return bytes((0x44,))
        if mode == 0x02:
            return dtcs.encode_mode_02(pids, state)
        if mode == 0x09 and len(pids) == 1:
            data = j1979.encode_mode_09(pids[0], state)
            return None if data is None else bytes((0x49, pids[0])) + data
        return None
