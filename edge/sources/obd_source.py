"""The OBD-II source: an ELM327/STN adapter read through the checked link (``edge.link``).

Named ``obd_source`` so that it does not shadow the ``obd`` package. At connect it finds out
what the vehicle is (VIN, protocol, supported PIDs; :mod:`fleetlink.edge.capabilities`),
picks the firmware profile that fits, tunes the adapter's timing, and then reads each
command at its own rate and priority (:mod:`.obd_schedule`). *How* a batch of commands is
read is a :class:`PollStrategy`: several mode 01 PIDs per request (the default,
:mod:`.obd_multi_pid`) or one per round trip. A profile (or the configuration) that names OBDb
signalsets adds their mode 22 commands to the same schedule, read on their own ECUs
(:mod:`.obd_obdb`). Every strategy reads through
:class:`~fleetlink.edge.link.elm327.Elm327Link`, which checks that each reply answers its
request, so a sample is only ever stored from a reply to the request for its signal.

It also spares the vehicle: when the ignition is off (only ``NO DATA`` or
``UNABLE TO CONNECT``, or a CAN bus gone quiet) it stops polling and probes the vehicle
with a growing interval so the ECUs can sleep; below ``low_voltage_v`` at the OBD port it
stops polling altogether until the voltage recovers. Both show in the status message and
as events.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from fleetlink.edge.capabilities import (
    Capabilities,
    CapabilityStore,
    CapabilityStoreError,
    read_capabilities,
)
from fleetlink.edge.config import ObdSection
from fleetlink.edge.link.dtcs import description
from fleetlink.edge.link.elm327 import Elm327Link, LinkStatus, Reading
from fleetlink.edge.link.errors import LinkError, LinkLostError
from fleetlink.edge.link.multi_pid import is_mode_01
from fleetlink.edge.link.replies import STATUS_MESSAGES
from fleetlink.edge.link.timing import Timing, tune
from fleetlink.edge.sources.base import AdapterState, CanActivity, Sample, Source
from fleetlink.edge.sources.obd_codes import MIL_SIGNAL_ID, TroubleCodeWatch
from fleetlink.edge.sources.obd_multi_pid import MultiPidPerRequest
from fleetlink.edge.sources.obd_obdb import PREFIX as OBDB_PREFIX
from fleetlink.edge.sources.obd_obdb import ObdbPolling, ObdbStrategy
from fleetlink.edge.sources.obd_schedule import PidSchedule
from fleetlink.edge.sources.obd_strategy import OnePidPerRequest, PollStrategy
from fleetlink.firmware_profiles import (
    DEFAULT_PROFILE,
    PidRate,
    Profile,
    ProfileError,
    load_profile,
    profile_ids,
)
from fleetlink.firmware_profiles.matching import best_profile, identify
from fleetlink.firmware_profiles.obdb import SignalsetError, VehicleSignals
from fleetlink.shared.event_types import DTC_SET
from fleetlink.shared.messages import ObdbStatus, PowerState, VehicleReport
from fleetlink.shared.signals import BY_OBD_COMMAND, by_obd_command
from fleetlink.shared.vin import decode_vin

log = logging.getLogger(__name__)

BATTERY_COMMAND = "ELM_VOLTAGE"
BATTERY_SIGNAL_ID = 256
_PROBE_EVERY_S = 1.0
_VOLTAGE_HYSTERESIS_V = 0.3
# Requests answered cleanly in a row before the adapter counts as healthy again.
_CLEAN_BATCHES = 50
# What an adapter says when the vehicle is not there to answer (ignition off).
_ASLEEP_REPLIES = frozenset({"NO DATA", "UNABLE TO CONNECT"})
# Adapter messages and reply faults reported once per change (never a vehicle asleep).
_TROUBLE_COUNTERS = (
    *(f"adapter_said:{m}" for m in STATUS_MESSAGES if m not in _ASLEEP_REPLIES),
    "truncated_replies",
    "garbled_replies",
    "mismatched_replies",
)

__all__ = [
    "BATTERY_COMMAND",
    "BATTERY_SIGNAL_ID",
    "MultiPidPerRequest",
    "ObdSource",
    "OnePidPerRequest",
    "PollStrategy",
    "Reading",
]


def _shares_requests(name: str) -> bool:
    """Return True for a command that may share a request (a mode 01 PID; not mode 22)."""
    return not name.startswith(OBDB_PREFIX) and is_mode_01(name)


def open_link(settings: ObdSection, counters: Counter[str]) -> Elm327Link:
    """Return an unopened link for the configured port that counts into ``counters``; the
    protocol and baud rate not set in ``settings`` come from its named profile."""
    adapter = profile.obd_adapter if (profile := settings.fixed_profile()) else None
    return Elm327Link(
        settings.port,
        baudrate=settings.baudrate or (adapter.baudrate if adapter else None),
        protocol=settings.protocol or (adapter.protocol if adapter else None),
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
    """Polls the chosen profile's PIDs (and the battery voltage) from an ELM327 adapter.

    A link that cannot be opened or disappears is reopened with capped exponential backoff.
    An adapter that owes an answer for ``stall_after_s`` is ``stalled``: it is probed
    until it answers, then the link resynchronises and polling resumes without reopening.
    ``no_data_rounds`` requests in a row answered only ``NO DATA`` mean the ignition is off:
    polling pauses and the vehicle is probed with backoff. The state is logged once per
    change. ``counters`` holds the link's counts (``ok_replies``, ``silent_replies``,
    ``null_replies``, ``garbled_replies``, ``mismatched_replies``, ``truncated_replies``,
    ``adapter_said:<message>``, ``stale_replies_discarded``, ``resyncs``, ``stalls``,
    ``stall_recoveries``, ``timing_refused``) and the source's (``connect_attempts``,
    ``link_lost``, ``link_no_data``, ``can_quiet``, ``low_voltage_stops`` …).

    ``capabilities_path`` is the SQLite file of the vehicle records (none kept when None).
    """

    name = "obd"

    def __init__(
        self,
        settings: ObdSection,
        strategy: PollStrategy | None = None,
        connect: Callable[[ObdSection, Counter[str]], Elm327Link] = open_link,
        capabilities_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        if strategy is None:
            strategy = MultiPidPerRequest() if settings.strategy == "multi_pid" else None
        self.strategy = strategy or OnePidPerRequest()
        self._mode_01_strategy = self.strategy
        self._obdb: ObdbPolling | None = None
        self._obdb_key: tuple[tuple[Path, ...], int | None, frozenset[int]] | None = None
        self._obdb_error = ""
        self._connect = connect
        self._stalled_since: float | None = None
        self._store_path = capabilities_path
        self._can: CanActivity | None = None
        # False while the vehicle answers OBD on a silent CAN bus (the CAN source listens
        # elsewhere, or is unplugged): its silence then says nothing about the ignition
        self._can_says_sleep = True
        self.power: PowerState = "unknown"
        self.battery_v: float | None = None
        self.profile: Profile | None = None
        self.capabilities: Capabilities | None = None
        self.timing: Timing | None = None
        self._codes = TroubleCodeWatch(settings.dtc_interval_s)
        self._trouble: set[str] = set()
        self._trouble_seen: dict[str, int] = {}
        self._clean_batches = 0

    # ------------------------------------------------------------------ reporting

    def observe_can(self, activity: CanActivity) -> None:
        """Take the CAN ids seen and the bus's activity from a CAN source (see
        :class:`~fleetlink.edge.sources.base.CanActivity`)."""
        self._can = activity

    def vehicle_report(self) -> VehicleReport:
        """Return the profile, power state, battery voltage and capability summary."""
        record = self.capabilities
        return VehicleReport(
            profile=self.profile.id if self.profile else "",
            profile_version=self.profile.version if self.profile else "",
            power=self.power,
            battery_v=None if self.battery_v is None else round(self.battery_v, 2),
            capabilities=record.summary() if record else {},
        )

    @property
    def mode_22_commands(self) -> int:
        """Return how many OBDb mode 22 commands are polled (0 without signalsets)."""
        return len(self._obdb.commands) if self._obdb is not None else 0

    def obdb_status(self) -> ObdbStatus | None:
        """Return the counts of the OBDb mode 22 polling (None without signalsets)."""
        if self._obdb is None:
            return None
        counts = {
            name: self.counters[f"obdb_{name}"]
            for name in ObdbStatus.model_fields
            if name != "commands"
        }
        return ObdbStatus(commands=len(self._obdb.commands), **counts)

    def _changed(self) -> None:
        self.report_changes += 1

    def _set_state(self, state: AdapterState, reason: str = "") -> None:
        if state == self._state:
            return
        previous, self._state = self._state, state
        level = logging.INFO if state == "connected" else logging.WARNING
        message = _MESSAGES[state] + (f" ({reason})" if reason else "")
        log.log(level, message, self.settings.port, extra={"previous": previous})
        self._changed()

    def _set_power(self, power: PowerState, reason: str) -> None:
        """Record the vehicle's power state; log and send an event when it changes."""
        previous = self.power
        if power == previous:
            return
        # the events go out before the new state shows, so whoever sees the state finds them
        if previous == "low_voltage":
            self.emit_event("voltage_restored", battery_v=self.battery_v)
            log.info("battery at %.1f V again; OBD polling may resume", self.battery_v or 0)
        if power == "low_voltage":
            self.counters["low_voltage_stops"] += 1
            log.warning("OBD polling stopped to spare the battery: %s", reason)
            self.emit_event(
                "low_voltage",
                "warning",
                battery_v=self.battery_v,
                limit_v=self.settings.low_voltage_v,
            )
        elif power == "ignition_off":
            log.info("ignition off (%s): OBD polling paused so the ECUs can sleep", reason)
            self.emit_event("ignition_off", reason=reason)
        elif power == "awake" and previous in ("ignition_off", "low_voltage"):
            log.info("vehicle awake again: OBD polling resumes")
            self.emit_event("ignition_on", reason=reason)
        self.power = power
        self._changed()

    def _note_battery(self, volts: float | None) -> None:
        """Keep the voltage at the OBD port and apply the low-voltage limit to it."""
        if volts is None:
            return
        self.battery_v = volts
        limit = self.settings.low_voltage_v
        if limit <= 0:
            return
        if self.power != "low_voltage" and volts < limit:
            self._set_power("low_voltage", f"{volts:.1f} V at the OBD port, limit {limit:g} V")
        elif self.power == "low_voltage" and volts >= limit + _VOLTAGE_HYSTERESIS_V:
            self._set_power("unknown", "voltage restored")

    def _note_trouble(self) -> None:
        """Log when the adapter starts answering with a kind of error, and when it has
        answered cleanly for a while again: once per change, not per reply."""
        counts = {name: self.counters[name] for name in _TROUBLE_COUNTERS}
        rising = {n for n, c in counts.items() if c > self._trouble_seen.get(n, 0)}
        self._trouble_seen = counts
        new = rising - self._trouble
        if new:
            self._trouble |= new
            self._clean_batches = 0
            what = ", ".join(sorted(n.removeprefix("adapter_said:") for n in new))
            log.warning(
                "OBD adapter on %s answers with errors (%s); those values are skipped and counted",
                self.settings.port,
                what,
            )
        elif rising:
            self._clean_batches = 0
        elif self._trouble:
            self._clean_batches += 1
            if self._clean_batches >= _CLEAN_BATCHES:
                self._trouble = set()
                log.info("OBD adapter on %s answers cleanly again", self.settings.port)

    # ------------------------------------------------------------------ session

    def _run(self) -> None:
        delay_s = self.settings.reconnect_min_s
        while not self.stopping.is_set():
            self.counters["connect_attempts"] += 1
            link = self._connect(self.settings, self.counters)
            if self.power == "low_voltage":
                # do not wake the bus looking for the vehicle until the battery recovered
                link.min_voltage_v = self.settings.low_voltage_v + _VOLTAGE_HYSTERESIS_V
            reason = ""
            try:
                state = _STATE_OF[link.open()]
            except LinkError as exc:
                self.counters["connect_errors"] += 1
                reason, state = str(exc), "disconnected"
            self._note_battery(link.battery_v)
            self._set_state(state, reason if state != self._state else "")
            try:
                if state == "connected" and self.power != "low_voltage":
                    delay_s = self.settings.reconnect_min_s
                    if self._can_quiet():
                        self._can_says_sleep = False
                        log.warning(
                            "the vehicle answers OBD while the CAN bus is silent: the CAN bus's "
                            "silence is not taken as ignition off until it carries traffic again"
                        )
                    self._set_power("awake", "the vehicle answers")
                    self._poll(link, self._discover(link))
                elif state in ("connected", "no_vehicle"):
                    if self.power != "low_voltage":
                        self._set_power("ignition_off", "no ECU answers")
                    self._poll(link, self._battery_schedule(), until=delay_s)
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
            if self._state == "disconnected":
                self.stopping.wait(delay_s)
            delay_s = min(delay_s * 2, self.settings.reconnect_max_s)

    def _battery_rates(self) -> list[PidRate]:
        if self.settings.battery_rate_hz <= 0:
            return []
        # the adapter's own reading, not a catalog PID: built without the profile's check
        return [
            PidRate.model_construct(
                command=BATTERY_COMMAND, rate_hz=self.settings.battery_rate_hz, priority="low"
            )
        ]

    def _battery_schedule(self) -> PidSchedule:
        return PidSchedule(self._battery_rates(), time.monotonic(), is_mode_01, self.counters)

    # ---------------------------------------------------------------- discovery

    def _choose_profile(self, vin: str | None, protocol_id: str) -> Profile:
        fixed = self.settings.fixed_profile()
        if fixed is not None:
            return fixed
        profiles = []
        for profile_id in profile_ids():
            try:
                profile = load_profile(profile_id)
            except ProfileError as exc:
                self.counters["profiles_unloadable"] += 1
                log.error("%s; not considered", exc)
                continue
            if profile.obd is not None:  # a CAN-only profile has nothing to poll
                profiles.append(profile)
        chosen = best_profile(profiles, identify(vin, protocol_id))
        return chosen or load_profile(DEFAULT_PROFILE)

    def _discover(self, link: Elm327Link) -> PidSchedule:
        """Read what the vehicle is, choose its profile, tune the adapter, record it all and
        return the schedule of what to poll.

        Raises:
            LinkLostError: the port went away.
        """
        vin = link.read_vin()
        profile = self._choose_profile(vin, link.protocol_id)
        if self.settings.tune_timing:
            wanted = profile.obd_adapter.timing
            self.timing = tune(link, wanted.adaptive, wanted.timeout_ms)
        record = read_capabilities(
            link,
            vin,
            can_ids=self._can.can_ids_seen() if self._can else (),
            timing=self.timing.summary() if self.timing else "",
            profile=profile.id,
            profile_version=profile.version,
        )
        first_time = self._store(record)
        changed = self.profile is None or self.profile.id != profile.id
        self.profile, self.capabilities = profile, record
        self._changed()
        if changed or first_time:
            log.info(
                "vehicle %s on %s: %d PIDs supported; reading it with profile %s %s",
                vin or "(no VIN)",
                link.protocol_name,
                len(record.supported_pids),
                profile.id,
                profile.version,
            )
            self.emit_event(
                "vehicle_identified",
                profile=profile.id,
                profile_version=profile.version,
                vin=vin,
                protocol=link.protocol_id,
                supported_pids=len(record.supported_pids),
                first_seen=first_time,
            )
        rates = []
        for rate in self.settings.schedule(profile):
            if link.supports(rate.command):
                rates.append(rate)
            elif self.counters[f"unsupported:{rate.command}"] == 0:
                self.counters[f"unsupported:{rate.command}"] += 1
                log.warning(
                    "the vehicle does not report %s as supported; not polling it", rate.command
                )
        if isinstance(self._mode_01_strategy, MultiPidPerRequest):
            self._mode_01_strategy.limit = profile.obd_adapter.max_pids_per_request
        obdb = self._obdb_for(
            profile,
            vin,
            {BY_OBD_COMMAND[r.command].id for r in rates if r.command in BY_OBD_COMMAND},
        )
        self.strategy = self._mode_01_strategy
        if obdb is not None:
            rates += obdb.rates()
            self.strategy = ObdbStrategy(self._mode_01_strategy, obdb)
        return PidSchedule(
            rates + self._battery_rates(),
            time.monotonic(),
            _shares_requests,
            self.counters,
            group=obdb.group if obdb is not None else None,
        )

    def _obdb_for(
        self, profile: Profile, vin: str | None, read_already: set[int]
    ) -> ObdbPolling | None:
        """Return the mode 22 commands of the OBDb signalsets for ``profile`` (None: none
        named, or they cannot be read: logged once per change, counted ``obdb_unloadable``)."""
        files = tuple(self.settings.signalset_files(profile))
        if not files:
            self._obdb = self._obdb_key = None
            return None
        named = profile.obd.obdb if profile.obd is not None else None
        year = self.settings.model_year or (named.model_year if named else None)
        if year is None and vin:
            year = decode_vin(vin).model_year
        key = (files, year, frozenset(read_already))
        if self._obdb_key == key and self._obdb is not None:
            self._obdb.forget_backoffs()  # connected or awake again: ask every ECU anew
            return self._obdb
        try:
            vehicle = VehicleSignals.from_files(files, year)
        except SignalsetError as exc:
            self.counters["obdb_unloadable"] += 1
            if str(exc) != self._obdb_error:
                self._obdb_error = str(exc)
                log.error("OBDb signalsets not polled: %s", exc)
            self._obdb = self._obdb_key = None
            return None
        self._obdb_error = ""
        self._obdb = ObdbPolling(
            vehicle,
            self.counters,
            self.settings.obdb_commands,
            read_already=key[2],
            on_change=self._changed,
        )
        self._obdb_key = key
        log.info(
            "polling %d mode 22 commands of %s (model year %s)",
            len(self._obdb.commands),
            ", ".join(str(f) for f in files),
            year or "any",
        )
        return self._obdb

    def _store(self, record: Capabilities) -> bool:
        """Keep ``record`` on the device; return True for a vehicle not seen before."""
        if self._store_path is None:
            return False
        try:
            store = CapabilityStore(self._store_path)
            try:
                return store.save(record)
            finally:
                store.close()
        except CapabilityStoreError as exc:
            self.counters["capability_store_errors"] += 1
            log.error("%s", exc)
            return False

    # ------------------------------------------------------------------- polling

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

    def _can_quiet(self) -> bool:
        """Return True when a CAN source that saw traffic has seen none for ``can_quiet_s``
        (unless the vehicle answered OBD through that silence; traffic makes it count again)."""
        if self._can is None:
            return False
        if self._can_active():
            self._can_says_sleep = True
        since = self._can.seconds_since_can_frame()
        quiet = since is not None and since >= self.settings.can_quiet_s
        return quiet and self._can_says_sleep

    def _can_active(self) -> bool:
        """Return True when a CAN source saw a frame within the last second."""
        if self._can is None:
            return False
        since = self._can.seconds_since_can_frame()
        return since is not None and since < min(1.0, self.settings.can_quiet_s)

    def _poll(self, link: Elm327Link, schedule: PidSchedule, until: float | None = None) -> None:
        """Read due commands until stopped, the link drops, the vehicle goes to sleep, the
        battery runs low, or (with ``until``: asleep, reading only the battery) ``until`` s
        pass or CAN traffic starts again.

        Raises:
            LinkLostError: the port went away.
        """
        started = time.monotonic()
        asleep_rounds = 0
        size = self.strategy.batch_size(link)
        while not self.stopping.is_set():
            if link.stalled:
                self._wait_out_stall(link)
                schedule.restart(time.monotonic())
                continue
            now = time.monotonic()
            if until is not None:
                if now - started >= until:
                    return
                if self.power == "ignition_off" and self._can_active():
                    self.counters["can_wakeups"] += 1
                    return
            elif self._can_quiet():
                self.counters["can_quiet"] += 1
                self._set_power("ignition_off", "the CAN bus is quiet")
                return
            batch = schedule.next_batch(now, size)
            if not batch:
                next_due = schedule.next_due()
                wait_s = 0.5 if next_due is None else min(0.5, next_due - now)
                self.stopping.wait(max(0.0, wait_s))
                continue
            pid_readings = 0
            asleep = 0
            for reading in self.strategy.read(link, batch):
                self._take(reading)
                if reading.command != BATTERY_COMMAND:
                    pid_readings += 1
                    asleep += reading.kind == "null" and reading.detail in _ASLEEP_REPLIES
            self._note_trouble()
            if until is None and self._codes.due(time.monotonic()):
                self._check_codes(link)
            if until is None and self.power == "low_voltage":
                return
            if pid_readings:
                asleep_rounds = asleep_rounds + 1 if asleep == pid_readings else 0
            if asleep_rounds >= self.settings.no_data_rounds:
                self.counters["link_no_data"] += 1
                self._set_power("ignition_off", "the ECUs answer NO DATA")
                return

    def _check_codes(self, link: Elm327Link) -> None:
        """Emit the MIL as a sample and each newly stored code as a ``dtc_set`` event."""
        check = self._codes.check(link, time.monotonic())
        if check.mil_on is not None:
            self.emit(Sample(MIL_SIGNAL_ID, int(time.time() * 1000), float(check.mil_on)))
        for code in check.new_codes:
            log.info("trouble code %s stored", code)
            self.emit_event(DTC_SET, "warning", code=code, description=description(code))

    def _take(self, reading: Reading) -> None:
        """Emit a sample for an ok reading (the link counted every other kind)."""
        if reading.kind != "ok" or reading.value is None:
            return
        if reading.command == BATTERY_COMMAND:
            self._note_battery(reading.value)
            signal_id = BATTERY_SIGNAL_ID
        elif reading.signal_id is not None:
            signal_id = reading.signal_id
        else:
            signal_id = by_obd_command(reading.command).id
        self.emit(Sample(signal_id, reading.time_ms, reading.value))
