"""Manufacturer PIDs from OBDb signalsets, polled beside mode 01 through the same scheduler.

:class:`ObdbPolling` turns a vehicle's OBDb mode 22 commands into scheduler entries (one per
command, at its OBDb ``freq``: the seconds between reads; grouped by ECU so the adapter is
pointed at each ECU once per round) and their signals into catalog samples: a signal whose
canonical name (:mod:`fleetlink.firmware_profiles.obdb.names`) is in the catalog is sent under
that wire id, converted to the catalog's unit; the first signal of the chain (most specific
first) takes a name, later ones with the same name are not sent; a value-map signal sends its
raw code (``isCharging``: 1 charging); a signal mode 01 already reads (``Vehicle.Speed``) is not
sent again. Others are decoded and counted
(``obdb_unpublished_values``), never sent: the ingest accepts catalog ids only.

:class:`ObdbStrategy` wraps the mode 01 strategy: it reads the scheduler's mode 22 batches
through :class:`~fleetlink.edge.link.mode22.Mode22Reader` and hands everything else to the
wrapped strategy (pointing the adapter back at the broadcast id first). An ECU that does not
answer (``NO DATA``, silence) is backed off as a whole, a DID it refuses (negative response)
alone: capped exponential backoff with jitter, then one request as a probe; an answer ends the
backoff. Each change is logged once; counters: ``obdb_requests``, ``obdb_ok``,
``obdb_no_data``, ``obdb_negative``, ``obdb_silent``, ``obdb_refused``, ``obdb_garbled``,
``obdb_skipped_backoff``, ``obdb_ecus_backed_off``, ``obdb_dids_backed_off`` (sent in the
device's status message as ``obdb``, republished when an ECU or DID starts or stops answering).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from fleetlink.edge.link.elm327 import Elm327Link, Reading
from fleetlink.edge.link.mode22 import Mode22Reader, Mode22Reply, ecu_of
from fleetlink.edge.sources.obd_strategy import PollStrategy
from fleetlink.firmware_profiles.obdb.signalset import Command, Signal, VehicleSignals
from fleetlink.firmware_profiles.schema import PidRate
from fleetlink.shared.backoff import Backoff
from fleetlink.shared.signals import BY_NAME

log = logging.getLogger(__name__)

PREFIX = "obdb:"
SERVICE = 0x22
MAX_RATE_HZ = 10.0
BACKOFF_MIN_S = 5.0
BACKOFF_MAX_S = 300.0
# OBDb unit -> (catalog unit, conversion)
_UNITS: dict[tuple[str, str], Callable[[float], float]] = {
    ("psi", "kPa"): lambda v: v * 6.894757,
    ("kilopascal", "kPa"): lambda v: v,
    ("kilometers", "km"): lambda v: v,
    ("kilometersPerHour", "km/h"): lambda v: v,
    ("percent", "percent"): lambda v: v,
    ("celsius", "celsius"): lambda v: v,
    ("fahrenheit", "celsius"): lambda v: (v - 32) / 1.8,
    ("volts", "V"): lambda v: v,
    ("hours", "h"): lambda v: v,
    ("gramsPerSecond", "g/s"): lambda v: v,
    ("litersPerHour", "l/h"): lambda v: v,
}


@dataclass(frozen=True)
class Published:
    """How one OBDb signal is sent: its catalog id and the conversion to the catalog's unit."""

    signal: Signal
    signal_id: int
    convert: Callable[[float], float]


def command_name(command: Command) -> str:
    """Return the scheduler's name for ``command`` (``obdb:7E4>7EC:2243AF``)."""
    return f"{PREFIX}{ecu_of(command)}:{command.request()}"


def _publishing(command: Command, taken: set[str], read_already: set[int]) -> list[Published]:
    published = []
    for signal in command.signals:
        entry = BY_NAME.get(signal.canonical)
        if entry is None or entry.name in taken or entry.id in read_already:
            continue
        if signal.value_map:
            convert: Callable[[float], float] | None = float
        else:
            convert = _UNITS.get((signal.unit or "", entry.unit))
        if convert is None:
            log.warning(
                "OBDb signal %s is in %s, the catalog's %s in %s: not sent",
                signal.id,
                signal.unit,
                entry.name,
                entry.unit,
            )
            continue
        taken.add(entry.name)
        published.append(Published(signal, entry.id, convert))
    return published


class ObdbPolling:
    """The mode 22 commands of one vehicle's signalsets, what each sends, and each ECU's and
    DID's backoff. ``commands`` is ``published`` (only commands with a catalogued signal) or
    ``all``; signals whose catalog id is in ``read_already`` (read by mode 01) are not sent
    twice."""

    def __init__(
        self,
        vehicle: VehicleSignals,
        counters: Counter[str],
        commands: str = "published",
        clock: Callable[[], float] = time.monotonic,
        read_already: frozenset[int] = frozenset(),
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.counters = counters
        self._on_change = on_change
        self._clock = clock
        self.commands: dict[str, Command] = {}
        self.published: dict[str, list[Published]] = {}
        taken: set[str] = set()
        for command in vehicle.commands:
            if command.service != SERVICE:
                continue
            name = command_name(command)
            if name in self.commands:
                continue
            published = _publishing(command, taken, set(read_already))
            if commands == "published" and not published:
                continue
            self.commands[name] = command
            self.published[name] = published
        self._ecu_backoff: dict[str, Backoff] = {}
        self._did_backoff: dict[str, Backoff] = {}
        self._until: dict[str, float] = {}

    def owns(self, name: str) -> bool:
        """Return True for a scheduler name of one of these commands."""
        return name in self.commands

    def group(self, name: str) -> str | None:
        """Return the ECU a command is sent to (its scheduler group), None for other names."""
        command = self.commands.get(name)
        return None if command is None else ecu_of(command)

    def rates(self) -> list[PidRate]:
        """Return a scheduler entry per command at its OBDb frequency (at most
        :data:`MAX_RATE_HZ`); commands carrying a published signal are ``normal``
        priority, the others ``low``."""
        return [
            # not a python-obd command: built without the profile's check
            PidRate.model_construct(
                command=name,
                rate_hz=min(MAX_RATE_HZ, 1 / max(command.frequency, 1e-3)),
                priority="normal" if self.published[name] else "low",
            )
            for name, command in self.commands.items()
        ]

    # ------------------------------------------------------------------ backoff

    def forget_backoffs(self) -> None:
        """Ask every ECU and DID at once again (the vehicle woke up or was reconnected: an ECU
        asleep before may answer now)."""
        for backoff in (*self._ecu_backoff.values(), *self._did_backoff.values()):
            backoff.reset()
        self._until.clear()

    def waiting(self, name: str) -> bool:
        """Return True while ``name``'s ECU or DID is backed off (not to be asked now)."""
        now = self._clock()
        ecu = ecu_of(self.commands[name])
        return self._until.get(ecu, 0.0) > now or self._until.get(name, 0.0) > now

    def _back_off(self, key: str, table: dict[str, Backoff], what: str, why: str) -> None:
        backoff = table.setdefault(key, Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S))
        if backoff.attempt == 0:
            self.counters[f"obdb_{what}s_backed_off"] += 1
            log.warning("OBDb %s %s %s; asked again with backoff", what, key, why)
            self._on_change()
        self._until[key] = self._clock() + backoff.next()

    def _answered(self, key: str, table: dict[str, Backoff], what: str) -> None:
        backoff = table.get(key)
        if backoff is not None and backoff.attempt:
            log.info("OBDb %s %s answers again", what, key)
            backoff.reset()
            self._on_change()
        self._until.pop(key, None)

    def note(self, name: str, reply: Mode22Reply) -> None:
        """Count ``reply`` and start, extend or end the backoff it calls for."""
        self.counters["obdb_requests"] += 1
        self.counters[f"obdb_{reply.kind}"] += 1
        ecu = ecu_of(self.commands[name])
        if reply.kind in ("no_data", "silent"):
            self._back_off(ecu, self._ecu_backoff, "ecu", f"does not answer ({reply.kind})")
        elif reply.kind in ("negative", "refused", "garbled"):
            self._answered(ecu, self._ecu_backoff, "ecu")
            self._back_off(name, self._did_backoff, "did", f"refused ({reply.detail})")
        else:
            self._answered(ecu, self._ecu_backoff, "ecu")
            self._answered(name, self._did_backoff, "did")

    # ------------------------------------------------------------------ readings

    def readings(self, name: str, reply: Mode22Reply, time_ms: int) -> Iterator[Reading]:
        """Yield a reading per published signal with a value in ``reply``; count the rest."""
        published = self.published[name]
        sent = set()
        for entry in published:
            value = reply.values.get(entry.signal.id)
            if value is None:
                self.counters["obdb_null_values"] += 1
                continue
            if isinstance(value, str):
                code = next((c for c, v in entry.signal.value_map.items() if v == value), None)
                if code is None:
                    continue
                value = float(code)
            sent.add(entry.signal.id)
            yield Reading(name, time_ms, entry.convert(value), "ok", signal_id=entry.signal_id)
        unpublished = sum(1 for sid in reply.values if sid not in sent)
        if unpublished:
            self.counters["obdb_unpublished_values"] += unpublished


class ObdbStrategy(PollStrategy):
    """Reads mode 22 commands of ``polling`` itself and the rest with ``inner``."""

    def __init__(self, inner: PollStrategy, polling: ObdbPolling) -> None:
        self.inner = inner
        self.polling = polling
        self._reader: Mode22Reader | None = None
        self._recoveries = 0

    def batch_size(self, link: Elm327Link) -> int:
        return self.inner.batch_size(link)

    def _reader_for(self, link: Elm327Link) -> Mode22Reader:
        # a new link, or an adapter back from a stall (it may have restarted): the adapter's
        # header is not known, so the reader starts from the broadcast id again
        recoveries = link.counters["stall_recoveries"]
        if self._reader is None or self._reader.link is not link or recoveries != self._recoveries:
            self._reader = Mode22Reader(link)
            self._recoveries = recoveries
        return self._reader

    def read(self, link: Elm327Link, commands: Sequence[str]) -> Iterator[Reading]:
        reader = self._reader_for(link)
        others = [c for c in commands if not self.polling.owns(c)]
        if others:
            reader.restore()
            yield from self.inner.read(link, others)
        for name in commands:
            if not self.polling.owns(name):
                continue
            if link.stalled:
                return
            if self.polling.waiting(name):
                self.polling.counters["obdb_skipped_backoff"] += 1
                continue
            reply = reader.read(self.polling.commands[name])
            self.polling.note(name, reply)
            if reply.kind == "ok":
                yield from self.polling.readings(name, reply, int(time.time() * 1000))
