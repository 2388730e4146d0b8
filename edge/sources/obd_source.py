"""The OBD-II source: an ELM327/STN adapter read through python-obd.

Named ``obd_source`` so that it does not shadow the ``obd`` package. Each poll group is
read at its own rate; *how* a group is read (one PID per round trip today, several per
request later) is a :class:`PollStrategy`, so the scheduler and the link handling stay
as they are when a faster strategy arrives.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import obd
from obd import OBDStatus

from fleetlink.edge.config import ObdSection
from fleetlink.edge.sources.base import AdapterState, Sample, Source
from fleetlink.shared.signals import by_obd_command

log = logging.getLogger(__name__)

BATTERY_COMMAND = "ELM_VOLTAGE"
BATTERY_SIGNAL_ID = 256

ReplyKind = Literal["ok", "silent", "null", "garbled"]

_NO_ANSWER_REPLIES = ("NO DATA", "CAN ERROR", "UNABLE TO CONNECT", "STOPPED", "BUS", "ERROR", "?")


@dataclass(frozen=True, slots=True)
class Reading:
    """The outcome of asking for one command.

    ``kind`` is ``ok`` (a value), ``silent`` (the adapter sent nothing before the timeout),
    ``null`` (the adapter answered that the vehicle did not, e.g. ``NO DATA``) or
    ``garbled`` (an answer that does not decode).
    """

    command: str
    time_ms: int
    value: float | None
    kind: ReplyKind


def reading_from_messages(command: str, messages: Sequence[Any] | None, time_ms: int) -> Reading:
    """Return the :class:`Reading` for the python-obd messages parsed from one reply."""
    if not messages:
        return Reading(command, time_ms, None, "silent")
    value = obd.commands[command](list(messages)).value
    magnitude = getattr(value, "magnitude", value)
    if isinstance(magnitude, int | float) and not isinstance(magnitude, bool):
        return Reading(command, time_ms, float(magnitude), "ok")
    raw = " ".join(str(m.raw()) for m in messages).strip().upper()
    if raw.startswith(_NO_ANSWER_REPLIES):
        return Reading(command, time_ms, None, "null")
    return Reading(command, time_ms, None, "garbled")


class PollStrategy(ABC):
    """How one poll group's commands are read over an open connection."""

    @abstractmethod
    def read(self, connection: obd.OBD, commands: Sequence[str]) -> Iterator[Reading]:
        """Yield one :class:`Reading` per command as soon as it is read; never raise for a
        bad reply."""


class OnePidPerRequest(PollStrategy):
    """python-obd's plain loop: one request and one round trip per PID.

    It sends through the interface rather than ``OBD.query`` so that an empty reply (silence)
    can be told from one that does not decode; for mode 01 and AT commands the bytes sent
    are the same as ``query``'s.
    """

    def read(self, connection: obd.OBD, commands: Sequence[str]) -> Iterator[Reading]:
        for name in commands:
            messages = connection.interface.send_and_parse(obd.commands[name].command)
            yield reading_from_messages(name, messages, int(time.time() * 1000))


@dataclass
class _Group:
    commands: list[str]
    period_s: float
    next_due: float


def open_connection(settings: ObdSection) -> obd.OBD:
    """Return a python-obd connection to the configured port (its status tells if it worked)."""
    connection = obd.OBD(
        portstr=settings.port,
        baudrate=settings.baudrate,
        protocol=settings.protocol,
        fast=False,
        timeout=settings.timeout_s,
        check_voltage=True,
    )
    # python-obd 0.7.3 opens the port with a fixed 10 s read timeout and applies ``timeout``
    # only while probing baud rates; a silent adapter would stall each query for 10 s.
    port = getattr(connection.interface, "_ELM327__port", None)
    if port is not None:
        port.timeout = settings.timeout_s
    return connection


def state_of(status: str) -> AdapterState:
    """Return the adapter state for a python-obd ``OBDStatus`` value."""
    if status == OBDStatus.CAR_CONNECTED:
        return "connected"
    if status in (OBDStatus.OBD_CONNECTED, OBDStatus.ELM_CONNECTED):
        return "no_vehicle"
    return "disconnected"


class ObdSource(Source):
    """Polls the configured groups (and the battery voltage) from an ELM327 adapter.

    A link that fails, disappears, or gives no value for ``silent_rounds`` rounds in a row
    (silence, or only ``NO DATA``) is closed and reopened with capped exponential backoff;
    the state is logged once per change. ``counters`` holds ``silent_replies``,
    ``null_replies``, ``garbled_replies``, ``connect_attempts``, ``link_lost``,
    ``link_silent`` and more.
    """

    name = "obd"

    def __init__(
        self,
        settings: ObdSection,
        strategy: PollStrategy | None = None,
        connect: Callable[[ObdSection], obd.OBD] = open_connection,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.strategy = strategy or OnePidPerRequest()
        self._connect = connect

    def _set_state(self, state: AdapterState) -> None:
        if state == self._state:
            return
        previous, self._state = self._state, state
        level = logging.INFO if state == "connected" else logging.WARNING
        messages = {
            "connected": "OBD adapter on %s connected to the vehicle",
            "no_vehicle": "OBD adapter on %s answers but no vehicle does (ignition off?)",
            "disconnected": "OBD adapter on %s is not reachable; retrying with backoff",
            "unknown": "OBD adapter on %s state unknown",
        }
        log.log(level, messages[state], self.settings.port, extra={"previous": previous})

    def _run(self) -> None:
        delay_s = self.settings.reconnect_min_s
        while not self.stopping.is_set():
            self.counters["connect_attempts"] += 1
            connection = None
            try:
                connection = self._connect(self.settings)
                state = state_of(connection.status())
            except Exception as exc:
                self.counters["connect_errors"] += 1
                log.debug("opening %s failed: %s", self.settings.port, exc)
                state = "disconnected"
            self._set_state(state)
            try:
                if connection is not None and state == "connected":
                    delay_s = self.settings.reconnect_min_s
                    self._poll(connection, self._groups(connection))
                elif connection is not None and state == "no_vehicle":
                    battery = self._battery_group()
                    self._poll(connection, [battery] if battery else [], until=delay_s)
            except Exception:
                self.counters["poll_errors"] += 1
                log.exception("OBD polling on %s failed; reconnecting", self.settings.port)
            finally:
                if connection is not None:
                    self._close(connection)
            if self.stopping.is_set():
                break
            if self._state != "no_vehicle":
                self.stopping.wait(delay_s)
            delay_s = min(delay_s * 2, self.settings.reconnect_max_s)

    def _close(self, connection: obd.OBD) -> None:
        try:
            connection.close()
        except Exception as exc:
            self.counters["close_errors"] += 1
            log.debug("closing %s failed: %s", self.settings.port, exc)

    def _battery_group(self) -> _Group | None:
        if self.settings.battery_rate_hz <= 0:
            return None
        return _Group([BATTERY_COMMAND], 1 / self.settings.battery_rate_hz, time.monotonic())

    def _groups(self, connection: obd.OBD) -> list[_Group]:
        now = time.monotonic()
        groups = []
        for poll in self.settings.poll_groups():
            supported = []
            for name in poll.commands:
                if connection.supports(obd.commands[name]):
                    supported.append(name)
                elif self.counters[f"unsupported:{name}"] == 0:
                    self.counters[f"unsupported:{name}"] += 1
                    log.warning("the vehicle does not report %s as supported; not polling it", name)
            if supported:
                groups.append(_Group(supported, 1 / poll.rate_hz, now))
        battery = self._battery_group()
        if battery:
            groups.append(battery)
        return groups

    def _poll(self, connection: obd.OBD, groups: list[_Group], until: float | None = None) -> None:
        """Read due groups until stopped, the link drops, it stays silent, or ``until`` s pass."""
        started = time.monotonic()
        silent_rounds = 0
        while not self.stopping.is_set():
            now = time.monotonic()
            if until is not None and now - started >= until:
                return
            due = [g for g in groups if g.next_due <= now]
            if not due:
                next_due = min((g.next_due for g in groups), default=now + 0.5)
                self.stopping.wait(max(0.0, next_due - now))
                continue
            answered = False
            if connection.status() == OBDStatus.NOT_CONNECTED:
                self.counters["link_lost"] += 1
                self._set_state("disconnected")
                return
            for group in due:
                group.next_due += group.period_s
                if group.next_due < now:
                    self.counters["rounds_late"] += 1
                    group.next_due = now + group.period_s
                for reading in self.strategy.read(connection, group.commands):
                    answered |= self._take(reading)
            silent_rounds = 0 if answered else silent_rounds + 1
            if silent_rounds >= self.settings.silent_rounds:
                self.counters["link_silent"] += 1
                self._set_state("disconnected")
                return

    def _take(self, reading: Reading) -> bool:
        """Emit an ok reading; count the others. Return True if the adapter's answer was live."""
        if reading.kind != "ok" or reading.value is None:
            self.counters[f"{reading.kind}_replies"] += 1
            return reading.kind == "garbled"
        if reading.command == BATTERY_COMMAND:
            signal_id = BATTERY_SIGNAL_ID
        else:
            signal_id = by_obd_command(reading.command).id
        self.emit(Sample(signal_id, reading.time_ms, reading.value))
        return True
