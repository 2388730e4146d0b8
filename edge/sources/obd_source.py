"""The OBD-II source: an ELM327/STN adapter read through the checked link (``edge.link``).

Named ``obd_source`` so that it does not shadow the ``obd`` package. Each poll group is
read at its own rate; *how* a group is read (one PID per round trip today, several per
request later) is a :class:`PollStrategy`, so the scheduler and the link handling stay
as they are when a faster strategy arrives. Every strategy reads through
:class:`~fleetlink.edge.link.elm327.Elm327Link`, which checks that each reply answers its
request, so a sample is only ever stored from a reply to the request for its signal.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from fleetlink.edge.config import ObdSection
from fleetlink.edge.link.elm327 import Elm327Link, LinkStatus, Reading
from fleetlink.edge.link.errors import LinkError, LinkLostError
from fleetlink.edge.sources.base import AdapterState, Sample, Source
from fleetlink.shared.signals import by_obd_command

log = logging.getLogger(__name__)

BATTERY_COMMAND = "ELM_VOLTAGE"
BATTERY_SIGNAL_ID = 256
_PROBE_EVERY_S = 1.0

__all__ = ["BATTERY_COMMAND", "BATTERY_SIGNAL_ID", "ObdSource", "PollStrategy", "Reading"]


class PollStrategy(ABC):
    """How one poll group's commands are read over an open, checked link."""

    @abstractmethod
    def read(self, link: Elm327Link, commands: Sequence[str]) -> Iterator[Reading]:
        """Yield one :class:`Reading` per command as soon as it is read; never raise for a
        bad reply (only :class:`LinkLostError` when the port goes away)."""


class OnePidPerRequest(PollStrategy):
    """python-obd's plain loop: one request and one round trip per PID, each reply checked."""

    def read(self, link: Elm327Link, commands: Sequence[str]) -> Iterator[Reading]:
        for name in commands:
            if link.stalled:
                return
            yield link.query(name)


@dataclass
class _Group:
    commands: list[str]
    period_s: float
    next_due: float


def open_link(settings: ObdSection, counters: Counter[str]) -> Elm327Link:
    """Return an unopened link for the configured port that counts into ``counters``."""
    return Elm327Link(
        settings.port,
        baudrate=settings.baudrate,
        protocol=settings.protocol,
        timeout_s=settings.timeout_s,
        stall_after_s=settings.stall_after_s,
        counters=counters,
    )


_STATE_OF: dict[LinkStatus, AdapterState] = {"vehicle": "connected", "adapter": "no_vehicle"}

_MESSAGES: dict[AdapterState, str] = {
    "connected": "OBD adapter on %s connected to the vehicle",
    "no_vehicle": "OBD adapter on %s answers but no vehicle does (ignition off?)",
    "disconnected": "OBD adapter on %s is not reachable; retrying with backoff",
    "stalled": "OBD adapter on %s stopped answering; probing until it answers again",
    "unknown": "OBD adapter on %s state unknown",
}


class ObdSource(Source):
    """Polls the configured groups (and the battery voltage) from an ELM327 adapter.

    A link that cannot be opened or disappears is reopened with capped exponential backoff.
    An adapter that owes an answer for ``stall_after_s`` is ``stalled``: it is probed
    until it answers, then the link resynchronises and polling resumes without reopening.
    ``no_data_rounds`` rounds in a row with nothing but ``NO DATA`` reopen the link (the
    ignition may be off). The state is logged once per change. ``counters`` holds the
    link's counts (``ok_replies``, ``silent_replies``, ``null_replies``,
    ``garbled_replies``, ``mismatched_replies``, ``stale_replies_discarded``, ``resyncs``,
    ``stalls``, ``stall_recoveries``) and the source's (``connect_attempts``,
    ``link_lost``, ``link_no_data`` …).
    """

    name = "obd"

    def __init__(
        self,
        settings: ObdSection,
        strategy: PollStrategy | None = None,
        connect: Callable[[ObdSection, Counter[str]], Elm327Link] = open_link,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.strategy = strategy or OnePidPerRequest()
        self._connect = connect
        self._stalled_since: float | None = None

    def _set_state(self, state: AdapterState, reason: str = "") -> None:
        if state == self._state:
            return
        previous, self._state = self._state, state
        level = logging.INFO if state == "connected" else logging.WARNING
        message = _MESSAGES[state] + (f" ({reason})" if reason else "")
        log.log(level, message, self.settings.port, extra={"previous": previous})

    def _run(self) -> None:
        delay_s = self.settings.reconnect_min_s
        while not self.stopping.is_set():
            self.counters["connect_attempts"] += 1
            link = self._connect(self.settings, self.counters)
            reason = ""
            try:
                state = _STATE_OF[link.open()]
            except LinkError as exc:
                self.counters["connect_errors"] += 1
                reason, state = str(exc), "disconnected"
            self._set_state(state, reason if state != self._state else "")
            try:
                if state == "connected":
                    delay_s = self.settings.reconnect_min_s
                    self._poll(link, self._groups(link))
                elif state == "no_vehicle":
                    battery = self._battery_group()
                    self._poll(link, [battery] if battery else [], until=delay_s)
            except LinkError as exc:
                lost = isinstance(exc, LinkLostError)
                self.counters["link_lost" if lost else "link_errors"] += 1
                self._set_state("disconnected", str(exc))
            except Exception:
                self.counters["poll_errors"] += 1
                log.exception("OBD polling on %s failed; reconnecting", self.settings.port)
            finally:
                link.close()
            if self.stopping.is_set():
                break
            if self._state != "no_vehicle":
                self.stopping.wait(delay_s)
            delay_s = min(delay_s * 2, self.settings.reconnect_max_s)

    def _battery_group(self) -> _Group | None:
        if self.settings.battery_rate_hz <= 0:
            return None
        return _Group([BATTERY_COMMAND], 1 / self.settings.battery_rate_hz, time.monotonic())

    def _groups(self, link: Elm327Link) -> list[_Group]:
        now = time.monotonic()
        groups = []
        for poll in self.settings.poll_groups():
            supported = []
            for name in poll.commands:
                if link.supports(name):
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

    def _wait_out_stall(self, link: Elm327Link) -> None:
        """Report the stall, probe until the adapter answers (or we stop), report recovery."""
        self._stalled_since = link.stalled_at or time.monotonic()
        self._set_state("stalled", f"no answer for {self.settings.stall_after_s:g} s")
        discarded_before = self.counters["stale_replies_discarded"]
        while not self.stopping.is_set():
            probed_at = time.monotonic()
            if not link.recover():
                # a hung adapter may queue every probe and answer them all when it is back
                self.stopping.wait(max(0.0, _PROBE_EVERY_S - (time.monotonic() - probed_at)))
                continue
            silent_for = time.monotonic() - self._stalled_since
            discarded = self.counters["stale_replies_discarded"] - discarded_before
            self._stalled_since = None
            self._set_state(
                "connected",
                f"answering again after {silent_for:.1f} s stalled; "
                f"{discarded} queued replies discarded",
            )
            return

    def _poll(self, link: Elm327Link, groups: list[_Group], until: float | None = None) -> None:
        """Read due groups until stopped, the link drops, it answers only NO DATA, or
        ``until`` s pass.

        Raises:
            LinkLostError: the port went away.
        """
        started = time.monotonic()
        no_data_rounds = 0
        while not self.stopping.is_set():
            if link.stalled:
                self._wait_out_stall(link)
                for group in groups:
                    group.next_due = time.monotonic()
                continue
            now = time.monotonic()
            if until is not None and now - started >= until:
                return
            due = [g for g in groups if g.next_due <= now]
            if not due:
                next_due = min((g.next_due for g in groups), default=now + 0.5)
                self.stopping.wait(max(0.0, next_due - now))
                continue
            kinds: set[str] = set()
            for group in due:
                group.next_due += group.period_s
                if group.next_due < now:
                    self.counters["rounds_late"] += 1
                    group.next_due = now + group.period_s
                for reading in self.strategy.read(link, group.commands):
                    self._take(reading)
                    kinds.add(reading.kind)
            no_data_rounds = no_data_rounds + 1 if kinds == {"null"} else 0
            if no_data_rounds >= self.settings.no_data_rounds:
                self.counters["link_no_data"] += 1
                return

    def _take(self, reading: Reading) -> None:
        """Emit a sample for an ok reading (the link counted every other kind)."""
        if reading.kind != "ok" or reading.value is None:
            return
        if reading.command == BATTERY_COMMAND:
            signal_id = BATTERY_SIGNAL_ID
        else:
            signal_id = by_obd_command(reading.command).id
        self.emit(Sample(signal_id, reading.time_ms, reading.value))
