"""One ELM327 session: open, request with a deadline, check each reply, resynchronise, stall.

Used by the agent's OBD source and by ``fleetlink diag``. python-obd supplies the protocol
parsers (CAN framing, headers) and the command table with its decoders; the serial
exchange is ours, so that

* every request has its own deadline (``timeout_s``) that nothing retries or stretches;
* every reply is checked against the request it is read for (:mod:`.replies`); one that does
  not answer it is discarded and counted, and the link resynchronises before the next
  request: bytes already waiting are read and discarded, then it waits until the adapter
  has been quiet for a moment (its last prompt seen), so a queued reply can never be read
  against a later request;
* an adapter that owes an answer for ``stall_after_s`` is *stalled*: requests fail at once
  without being sent, and :meth:`Elm327Link.recover` probes it until it answers again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import serial

from fleetlink.edge.link.errors import (
    AdapterRefusedError,
    LinkError,
    LinkLostError,
)
from fleetlink.edge.link.python_obd import Message, obd
from fleetlink.edge.link.replies import (
    PROMPT,
    STATUS_MESSAGES,
    TRUNCATED,
    Classified,
    ReplyKind,
    classify,
    classify_at,
    split_lines,
)
from fleetlink.edge.link.serial_port import describe, open_port, read_reply, write_line

LinkStatus = Literal["vehicle", "adapter"]

# The first request after ATSP0 makes the adapter search for the vehicle's protocol, which
# takes seconds on the older, slower buses; ATZ restarts the chip (about one second).
_SEARCH_TIMEOUT_S = 6.0
_RESET_TIMEOUT_S = 2.0
_SETUP_TIMEOUT_S = 2.0
_QUIET_S = 0.25
_RESYNC_MAX_S = 5.0
_MIN_VOLTAGE = 6.0
_CAN_SETTINGS = (b"ATE0", b"ATH1", b"ATL0")
# Replies are read with or without echo and linefeeds; clones that answer ``?`` to these are
# used as they are. Headers are needed to tell the ECUs apart.
_OPTIONAL_SETTINGS = frozenset({b"ATE0", b"ATL0"})
_COUNTER: dict[ReplyKind, str] = {
    "ok": "ok_replies",
    "silent": "silent_replies",
    "null": "null_replies",
    "negative": "negative_replies",
    "garbled": "garbled_replies",
    "mismatch": "mismatched_replies",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """One request's outcome: what the reply was (``kind``) and, for ``ok`` and ``negative``,
    the python-obd messages that answer the request. ``time_ms`` is when it arrived (Unix ms).
    """

    request: bytes
    kind: ReplyKind
    messages: list[Message]
    time_ms: int
    detail: str = ""
    negative_code: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A decoded value for one python-obd command, or why there is none (``kind`` != ok).

    ``signal_id`` names the catalog signal when ``command`` is not a python-obd command (a
    manufacturer PID read with an OBDb signalset).
    """

    command: str
    time_ms: int
    value: float | None
    kind: ReplyKind
    unit: str = ""
    detail: str = ""
    signal_id: int | None = None


def _looks_like_data(line: str) -> bool:
    compact = line.replace(" ", "")
    return len(compact) >= 6 and all(c in "0123456789ABCDEFabcdef" for c in compact)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Elm327Link:
    """An ELM327 adapter on ``path`` (any name that resolves to a pty or serial device).

    ``counters`` (shared with the caller when given) counts every request's outcome
    (``ok_replies``, ``silent_replies``, ``null_replies``, ``negative_replies``,
    ``garbled_replies``, ``mismatched_replies``), ``stale_replies_discarded`` (complete
    replies read and thrown away while resynchronising), ``resyncs``, ``stalls`` and
    ``stall_recoveries``. ``refused_settings`` lists the optional set-up commands (echo off,
    linefeeds off) the adapter answered with ``?``; the link works without them.
    """

    def __init__(
        self,
        path: str,
        *,
        baudrate: int | None = None,
        protocol: str | None = None,
        timeout_s: float = 1.0,
        stall_after_s: float = 3.0,
        counters: Counter[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.baudrate = baudrate
        self.protocol_request = protocol
        self.timeout_s = timeout_s
        self.stall_after_s = stall_after_s
        self.counters: Counter[str] = Counter() if counters is None else counters
        self._clock = clock
        self._port: serial.Serial | None = None
        self.device = ""
        self.identity = ""
        self.protocol: obd.protocols.protocol.Protocol | None = None
        self.battery_v: float | None = None
        # below this voltage at the OBD port open() does not look for the vehicle
        self.min_voltage_v = _MIN_VOLTAGE
        self.supported: set[obd.OBDCommand] = set()
        # every mode 01 PID the vehicle's bitmaps list, python-obd knowing it or not
        self.supported_pids: set[int] = set()
        self.responders = 0
        # False once the adapter refused a request with a response count (see multi_pid)
        self.response_counts = True
        self.timing_commands: list[bytes] = []
        self._needs_resync = False
        self._owed_since: float | None = None
        self.stalled = False
        self.stalled_at: float | None = None
        self._setting_up = False
        self.refused_settings: list[str] = []

    # ------------------------------------------------------------------ session

    def open(self, give_up_after_s: float = 30.0) -> LinkStatus:
        """Open the port, find the baud rate, set the adapter up and look for the vehicle.

        Returns ``vehicle`` when an ECU answered (protocol known, supported PIDs read) or
        ``adapter`` when only the adapter answers (ignition off, no OBD power).

        Raises:
            PortError, AdapterNotFoundError: see :func:`.serial_port.open_port`.
            AdapterRefusedError: the device answers but refuses the ELM327 set-up commands.
            LinkLostError: the port went away meanwhile.
        """
        give_up_at = self._clock() + give_up_after_s
        probe_s = min(max(self.timeout_s, 0.5), 1.0)
        opened = open_port(self.path, self.baudrate, probe_timeout_s=probe_s, give_up_at=give_up_at)
        self._port, self.device = opened.serial, opened.device
        self.baudrate, self.identity = opened.baudrate, opened.identity
        # The protocol search may rightly take longer than a stall; set-up has its own limits.
        self._setting_up = True
        try:
            return self._set_up(give_up_at)
        except BaseException:
            self.close()
            raise
        finally:
            self._setting_up = False
            self._owed_since = None

    def _set_up(self, give_up_at: float) -> LinkStatus:
        reset = self._exchange(b"ATZ", min(_RESET_TIMEOUT_S, give_up_at - self._clock()))
        self.identity = next((ln for ln in reset if "ELM" in ln.upper()), self.identity)
        self._apply_settings()
        voltage = self.at(b"ATRV")
        if voltage.kind == "ok":
            self.battery_v = float(voltage.messages[0].frames[0].raw.upper().rstrip("V"))
        if self.battery_v is None or self.battery_v < self.min_voltage_v:
            return "adapter"
        select = b"ATTP" + self.protocol_request.encode() if self.protocol_request else b"ATSP0"
        self.at(select, max(self.timeout_s, _SETUP_TIMEOUT_S))
        search_s = max(self.timeout_s, min(_SEARCH_TIMEOUT_S, give_up_at - self._clock()))
        lines = self._exchange(b"0100", search_s)
        data_lines = [ln for ln in lines if not ln.upper().startswith("SEARCHING")]
        if not any(_looks_like_data(ln) for ln in data_lines):
            return "adapter"
        number = self.at(b"ATDPN", max(self.timeout_s, _SETUP_TIMEOUT_S))
        protocol_id = ""
        if number.kind == "ok":
            protocol_id = number.messages[0].frames[0].raw.upper().removeprefix("A")
        parser = obd.elm327.ELM327._SUPPORTED_PROTOCOLS.get(protocol_id)
        if parser is None:
            raise AdapterRefusedError(
                f"the adapter on {describe(self.path)} reports protocol {protocol_id!r}, which "
                "python-obd cannot parse; set the protocol (1-9, A) explicitly"
            )
        protocol = parser(data_lines)
        found = classify(b"0100", data_lines, protocol)
        if found.kind != "ok":
            return "adapter"
        self.responders = len(found.messages)
        self.protocol = protocol
        self._read_supported()
        return "vehicle"

    def _apply_settings(self) -> None:
        for command in _CAN_SETTINGS:
            reply = self.at(command)
            if reply.kind == "null" and command in _OPTIONAL_SETTINGS:
                if command.decode() not in self.refused_settings:
                    self.refused_settings.append(command.decode())
                continue
            if reply.kind != "ok":
                raise AdapterRefusedError(
                    f"the device on {describe(self.path)} answers ATI but refused "
                    f"{command.decode()} ({reply.detail or reply.kind}); is it an ELM327?"
                )
        for command in self.timing_commands:
            # accepted once (see .timing); an adapter that restarted gets them again
            if self.at(command).kind != "ok":
                self.counters["timing_reapply_failed"] += 1

    def _read_supported(self) -> None:
        self.supported = set(obd.commands.base_commands())
        self.supported_pids = set()
        for getter in obd.commands.pid_getters():
            if getter.mode != 1 or (getter.pid and getter not in self.supported):
                continue
            reply = self.request(getter.command)
            if reply.kind != "ok":
                continue
            bits = getter(reply.messages).value
            for i, bit in enumerate(bits or []):
                pid = getter.pid + i + 1
                if bit:
                    self.supported_pids.add(pid)
                if bit and obd.commands.has_pid(1, pid):
                    self.supported.add(obd.commands[1][pid])
                    if obd.commands.has_pid(2, pid):
                        self.supported.add(obd.commands[2][pid])
        # bitmaps beyond python-obd's table (01 60, 01 80 …) are read from the raw bytes
        base = 0x60
        while base in self.supported_pids and base < 0xE0:
            if any(g.mode == 1 and g.pid == base for g in obd.commands.pid_getters()):
                break
            reply = self.request(b"01%02X" % base)
            if reply.kind != "ok" or len(reply.messages[0].data) < 6:
                break
            bits = int.from_bytes(bytes(reply.messages[0].data[2:6]), "big")
            self.supported_pids.update(base + i for i in range(1, 33) if bits >> (32 - i) & 1)
            base += 0x20

    def supports(self, name: str) -> bool:
        """Return True when the command ``name`` can be asked: an AT command, a base command,
        a PID the vehicle's bitmaps list, or a service without a bitmap."""
        command = obd.commands[name]
        if command.mode not in (1, 2):
            return True
        return command in self.supported

    def close(self) -> None:
        """Close the port; never raises."""
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                self.counters["close_errors"] += 1

    @property
    def protocol_name(self) -> str:
        """Return the vehicle protocol's name, empty before a vehicle answered."""
        return str(self.protocol.ELM_NAME) if self.protocol is not None else ""

    @property
    def protocol_id(self) -> str:
        """Return the ELM327 protocol number ("6" for CAN 11-bit 500 kbit/s) or ""."""
        return str(self.protocol.ELM_ID) if self.protocol is not None else ""

    # ----------------------------------------------------------------- exchange

    def _serial(self) -> serial.Serial:
        if self._port is None:
            raise LinkLostError(f"the link to {describe(self.path)} is closed")
        return self._port

    def _discard_waiting(self) -> None:
        """Read whatever already arrived (late replies) and count the complete ones."""
        port = self._serial()
        try:
            waiting = port.in_waiting
            junk = port.read(waiting) if waiting else b""
        except (serial.SerialException, OSError) as exc:
            raise LinkLostError(f"{port.port} went away: {exc}") from None
        if junk:
            self.counters["stale_replies_discarded"] += junk.count(PROMPT)

    def _exchange(self, command: bytes, timeout_s: float) -> list[str]:
        """Send ``command`` and return the reply's lines ([] when no prompt came in time)."""
        if self._needs_resync:
            self.resync()
        self._discard_waiting()
        port = self._serial()
        write_line(port, command)
        sent = self._clock()
        if self._owed_since is None:
            self._owed_since = sent
        deadline = sent + max(timeout_s, 0.0)
        if not self.stalled and not self._setting_up:
            deadline = min(deadline, max(self._owed_since + self.stall_after_s, sent + 0.05))
        raw = read_reply(port, time.monotonic() + (deadline - sent))
        if not raw.endswith(PROMPT):
            self._needs_resync = True
            if raw:
                self.counters["partial_replies"] += 1
            owed_s = self._clock() - self._owed_since
            if owed_s >= self.stall_after_s and not self.stalled and not self._setting_up:
                self.stalled = True
                self.stalled_at = self._clock()
                self.counters["stalls"] += 1
            return []
        self._owed_since = None
        return split_lines(raw)

    def _finish(self, request: bytes, result: Classified, silent: bool) -> Reply:
        kind: ReplyKind = "silent" if silent else result.kind
        self.counters[_COUNTER[kind]] += 1
        if kind == "null" and result.detail in STATUS_MESSAGES:
            self.counters[f"adapter_said:{result.detail}"] += 1
        elif kind == "garbled" and result.detail.startswith(TRUNCATED):
            self.counters["truncated_replies"] += 1
        if kind in ("mismatch", "garbled"):
            self._needs_resync = True
        return Reply(request, kind, result.messages, _now_ms(), result.detail, result.negative_code)

    def request(
        self, command: bytes, timeout_s: float | None = None, *, responses: int | None = None
    ) -> Reply:
        """Send the OBD request ``command`` (``b"010C"``) and return its checked reply.

        ``responses`` (1-15) is appended as the ELM327's response count: the adapter stops
        listening once that many frames came instead of waiting out its timeout.

        Never raises for a bad reply: silence, ``NO DATA``, garbage and replies to other
        requests are kinds of :class:`Reply`. While the link is stalled nothing is sent and
        the reply is ``silent`` at once.

        Raises:
            LinkLostError: the port went away.
        """
        if self.stalled:
            return self._finish(command, Classified("silent"), silent=True)
        sent = command if responses is None else command + b"%X" % min(max(responses, 1), 15)
        lines = self._exchange(sent, self.timeout_s if timeout_s is None else timeout_s)
        if not lines:
            return self._finish(command, Classified("silent"), silent=True)
        if self.protocol is None:
            raise LinkError(f"no vehicle protocol on {describe(self.path)}; open() first")
        return self._finish(command, classify(command, lines, self.protocol), silent=False)

    def request_lines(self, command: bytes, timeout_s: float | None = None) -> list[str]:
        """Send the OBD request ``command`` and return the reply's lines unchecked, for a
        caller that decodes them itself (mode 22 with an OBDb signalset; headers are on).

        Returns [] when no complete reply came in time (counted as ``silent_replies``; the
        link resynchronises before the next request) or while the link is stalled.

        Raises:
            LinkLostError: the port went away.
        """
        if self.stalled:
            self.counters["silent_replies"] += 1
            return []
        lines = self._exchange(command, self.timeout_s if timeout_s is None else timeout_s)
        if not lines:
            self.counters["silent_replies"] += 1
        return lines

    def mark_out_of_step(self) -> None:
        """Have the link resynchronise before the next request (a reply that answered
        another request was read)."""
        self._needs_resync = True

    def at(self, command: bytes, timeout_s: float | None = None) -> Reply:
        """Send the AT command ``command`` (``b"ATRV"``) and return its checked reply.

        Raises:
            LinkLostError: the port went away.
        """
        if self.stalled:
            return self._finish(command, Classified("silent"), silent=True)
        lines = self._exchange(command, self.timeout_s if timeout_s is None else timeout_s)
        if not lines:
            return self._finish(command, Classified("silent"), silent=True)
        return self._finish(command, classify_at(command, lines), silent=False)

    def query(self, name: str) -> Reading:
        """Ask for the python-obd command ``name`` (``"RPM"``, ``"ELM_VOLTAGE"``) and return
        its value in python-obd's unit, or the reason there is none.

        Raises:
            LinkLostError: the port went away.
        """
        command = obd.commands[name]
        if command.command.upper().startswith(b"AT"):
            reply = self.at(command.command)
        else:
            reply = self.request(command.command)
        if reply.kind != "ok":
            return Reading(name, reply.time_ms, None, reply.kind, detail=reply.detail)
        return self.decode(name, reply.messages, reply.time_ms)

    def decode(self, name: str, messages: list[Message], time_ms: int) -> Reading:
        """Return the value python-obd's decoder for ``name`` reads from checked ``messages``
        (a ``garbled`` reading, counted as ``undecodable_replies``, when it is not a number)."""
        command = obd.commands[name]
        value = command(messages).value
        magnitude = getattr(value, "magnitude", value)
        if isinstance(magnitude, int | float) and not isinstance(magnitude, bool):
            unit = f"{value.units:~}" if hasattr(value, "units") else ""
            return Reading(name, time_ms, float(magnitude), "ok", unit)
        self.counters["undecodable_replies"] += 1
        return Reading(name, time_ms, None, "garbled")

    def read_vin(self) -> str | None:
        """Return the 17-character VIN from the raw mode 09 02 reply, or None.

        python-obd's own VIN decoder strips leading and trailing '0', '1', '2' and 'x'
        characters, which are legitimate in a VIN, so the raw message bytes are read instead.

        Raises:
            LinkLostError: the port went away.
        """
        reply = self.request(b"0902", max(self.timeout_s, _SETUP_TIMEOUT_S))
        if reply.kind != "ok":
            return None
        # after mode, PID and item count; some ECUs pad the VIN with NULs on either side
        raw = bytes(reply.messages[0].data)[3:].strip(b"\x00")[-17:]
        vin = raw.decode("ascii", errors="replace")
        return vin if len(vin) == 17 and vin.isalnum() else None

    def read_battery_v(self) -> float | None:
        """Return the voltage at the OBD port (ATRV), or None when the adapter gave none.

        Raises:
            LinkLostError: the port went away.
        """
        reading = self.query("ELM_VOLTAGE")
        return reading.value

    # ------------------------------------------------------------- resync, stall

    def resync(self) -> int:
        """Discard every reply still on its way, then return how many were discarded.

        Reads until the adapter has sent nothing for a short quiet spell (its last prompt
        has been seen), for at most a few seconds; if it is still talking then, the next
        request resynchronises again.

        Raises:
            LinkLostError: the port went away.
        """
        port = self._serial()
        self.counters["resyncs"] += 1
        discarded = 0
        give_up_at = time.monotonic() + _RESYNC_MAX_S
        quiet = False
        try:
            port.reset_input_buffer()
            while time.monotonic() < give_up_at:
                port.timeout = _QUIET_S
                chunk = port.read(4096)
                if not chunk:
                    quiet = True
                    break
                discarded += chunk.count(PROMPT)
        except (serial.SerialException, OSError) as exc:
            raise LinkLostError(f"{port.port} went away: {exc}") from None
        self.counters["stale_replies_discarded"] += discarded
        self._needs_resync = not quiet
        return discarded

    def recover(self) -> bool:
        """Probe a stalled adapter once; return True when it answers and the link is usable.

        A probe is ``ATI``: any complete reply means the adapter is back. Then the link
        resynchronises (its queued replies are discarded and counted), echo/headers/
        linefeeds are set again in case the adapter restarted, and the stall is over.

        Raises:
            LinkLostError: the port went away.
            AdapterRefusedError: the adapter answers but refuses the set-up commands.
        """
        if not self.stalled:
            return True
        if self._needs_resync:
            self.resync()
        port = self._serial()
        write_line(port, b"ATI")
        raw = read_reply(port, time.monotonic() + self.timeout_s)
        if not raw.endswith(PROMPT):
            self._needs_resync = bool(raw)
            return False
        if classify_at(b"ATI", split_lines(raw)).kind != "ok":
            self.counters["stale_replies_discarded"] += 1
        self.resync()
        self.stalled = False
        self.stalled_at = None
        self._owed_since = None
        self._apply_settings()
        self.counters["stall_recoveries"] += 1
        return True
