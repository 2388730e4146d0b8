"""The alert engine: rules over the samples, nudge then escalate, and the sinks.

**Contract for event producers.** Any producer (a source, the anomaly models, a future
plug-in) that puts an :class:`~fleetlink.shared.messages.Event` on the agent's event queue
whose type is in :data:`NUDGED_EVENTS` (``anomaly``, ``dtc_set``) gets the same treatment as
a rule's alert: the agent hands it to :meth:`AlertEngine.observe_event`, the driver is told
through every sink (its message is ``data["message"]`` when the producer gives one), it
counts as an occurrence of the rule that type maps to, and it may escalate. The event itself
travels to the cloud unchanged, with its own id, so the alert the driver acknowledges is the
producer's event. Every other event passes through untouched.

**What the cloud receives** (all on the acked event path: event queue → outbox → MQTT →
``events`` table):

- a rule's nudge: an ``alert`` event, severity ``info`` (so it is kept and listed, but opens
  no inbox item), ``data``: ``rule``, ``message``, ``value``, ``threshold``, ``unit``,
  ``repeats`` and ``window:<signal>`` (the signal's values over ``window_s`` seconds before
  the alert, ``"seconds:value"`` pairs);
- an escalation, when a rule's occurrences reach ``escalate_after`` within
  ``escalate_within_min``: a ``coaching`` event (driving rules) or a ``vehicle_alert`` event
  (the vehicle's condition), severity ``warning`` unless the rule says otherwise, so the
  cloud inbox opens an item; ``data``: ``rule``, ``message``, ``repeats``, ``within_min``,
  ``alert_id`` (the occurrence that escalated); the count then starts afresh;
- the driver's acknowledgement: an ``alert_ack`` event, severity ``info``, ``data``:
  ``alert_id``, ``rule``, ``via`` (``display`` or ``terminal``), ``acked_ms``.

Occurrence counts and acknowledgements live in the alert record (:mod:`.store`), so a restart
or an offline day changes nothing.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from fleetlink.edge.alerts.alert import Alert, Severity
from fleetlink.edge.alerts.history import SignalHistory
from fleetlink.edge.alerts.rules import (
    FUEL_LEVEL,
    FUEL_SPAN_S,
    READ_SIGNALS,
    CoolantOverheat,
    FuelDrop,
    Gate,
    GatedRule,
    HarshAccel,
    HarshBrake,
    HarshCorner,
    Idling,
    LowBattery,
    MilOn,
    NewDm1Fault,
    Rule,
    RuleSet,
    Speeding,
)
from fleetlink.edge.alerts.settings import (
    DEFAULT_HYSTERESIS,
    DEFAULT_THRESHOLDS,
    AlertsSection,
)
from fleetlink.edge.alerts.sinks import AlertSink
from fleetlink.edge.alerts.store import AlertStore
from fleetlink.edge.alerts.zones import SpeedZones
from fleetlink.edge.sources.base import Sample
from fleetlink.firmware_profiles.schema import AlertThresholds
from fleetlink.shared.event_types import ANOMALY, DTC_SET
from fleetlink.shared.messages import Event, GeofenceSet
from fleetlink.shared.signals import by_id

log = logging.getLogger(__name__)

ALERT = "alert"
ALERT_ACK = "alert_ack"
COACHING = "coaching"
VEHICLE_ALERT = "vehicle_alert"
# Event types on the agent's queue that are shown to the driver, and the rule each counts as.
NUDGED_EVENTS: dict[str, str] = {ANOMALY: "anomaly", DTC_SET: "new_dtc"}
DRIVING_RULES = frozenset({"harsh_brake", "harsh_accel", "harsh_corner", "speeding", "idling"})
_CHECK_ACKS_EVERY_S = 0.5

_RULES: dict[str, type[Rule]] = {
    "harsh_brake": HarshBrake,
    "harsh_accel": HarshAccel,
    "harsh_corner": HarshCorner,
    "idling": Idling,
    "coolant_overheat": CoolantOverheat,
    "low_battery": LowBattery,
    "mil_on": MilOn,
    "new_dtc": NewDm1Fault,
    "fuel_drop": FuelDrop,
}


def escalation_type(rule: str) -> str:
    """Return the event type an escalation of ``rule`` travels as."""
    return COACHING if rule in DRIVING_RULES else VEHICLE_ALERT


def signal_history(settings: AlertsSection) -> SignalHistory:
    """Return an empty history that keeps what the rules and the alert windows read."""
    return SignalHistory(
        keep_s=settings.window_s + 5.0, keep_longer_s={FUEL_LEVEL: FUEL_SPAN_S + 10.0}
    )


def build_rules(
    settings: AlertsSection,
    profile: AlertThresholds,
    zones: Callable[[], SpeedZones],
) -> RuleSet:
    """Return the enabled rules, each with its threshold (device config, else profile, else
    default), hysteresis and cooldown."""
    rules = []
    for name in [*_RULES, "speeding"]:
        own = settings.rule(name)
        if not own.enabled:
            continue
        threshold = own.threshold
        if threshold is None:
            threshold = profile.threshold(name)
        if threshold is None:
            threshold = DEFAULT_THRESHOLDS[name]
        rule: Rule
        if name == "speeding":
            limit = settings.speed_limit_kmh or profile.overspeed_kmh
            rule = Speeding(threshold, limit, zones)
        else:
            rule = _RULES[name](threshold)
        hysteresis = own.hysteresis if own.hysteresis is not None else DEFAULT_HYSTERESIS[name]
        cooldown_s = own.cooldown_s if own.cooldown_s is not None else settings.cooldown_s
        gate = Gate(threshold, hysteresis, int(cooldown_s * 1000), above=rule.above)
        rules.append(GatedRule(rule, gate))
    return RuleSet(rules)


class AlertEngine:
    """The device's in-cab alerts. Feed it samples (:meth:`observe`) and the event queue's
    events (:meth:`observe_event`); take the events it makes for the cloud with
    :meth:`take_events`; call :meth:`start` once and :meth:`poll` often (acknowledgements).

    Raises:
        AlertStoreError: (from the constructor) the alert record cannot be opened.
    """

    def __init__(
        self,
        settings: AlertsSection,
        profile: AlertThresholds,
        store_path: Path,
        sinks: list[AlertSink],
        fences: Callable[[], GeofenceSet | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sinks = sinks
        self.store = AlertStore(store_path)
        self.history = signal_history(settings)
        self.counters: Counter[str] = Counter()
        self._fences = fences
        self._zones = SpeedZones(None)
        self.rules = build_rules(settings, profile, self._speed_zones)
        self._clock = clock
        self._outgoing: list[Event] = []
        self._acks: queue.Queue[tuple[uuid.UUID, str]] = queue.Queue()
        self._next_ack_check = 0.0
        self._failing_sinks: set[str] = set()

    def start(self) -> None:
        """Start the sinks (a sink that cannot start is left out, and logged)."""
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.start(self.request_ack)
            except OSError as exc:
                self.counters[f"sink_failures_{sink.name}"] += 1
                log.error("alert sink %s cannot start, running without it: %s", sink.name, exc)
            else:
                self.sinks.append(sink)
        log.info(
            "alerts: %d rules (%s); sinks: %s",
            len(self.rules.rules),
            ", ".join(self.rules.names()),
            ", ".join(s.name for s in self.sinks) or "none",
        )

    def _speed_zones(self) -> SpeedZones:
        fences = self._fences()
        if (fences.version if fences is not None else -1) != self._zones.version:
            self._zones = SpeedZones(fences)
        return self._zones

    def observe(self, sample: Sample) -> None:
        """Take one sample; a rule that fires makes an alert (NaN or infinite values are
        counted and ignored)."""
        if sample.signal_id not in READ_SIGNALS:
            return
        if not self.history.add(sample.signal_id, sample.time_ms, sample.value):
            self.counters["non_finite_samples"] += 1
            return
        for firing in self.rules.evaluate(self.history, sample.signal_id):
            rule = firing.rule
            window = {}
            for signal_id in sorted(rule.inputs):
                text = self.history.window_text(
                    signal_id, firing.time_ms, int(self.settings.window_s * 1000)
                )
                if text is not None:
                    window[f"window:{by_id(signal_id).name}"] = text
            alert = Alert(
                id=uuid.uuid4(),
                rule=rule.name,
                time_ms=firing.time_ms,
                message=firing.measure.text,
                severity="critical" if rule.name == "coolant_overheat" else "warning",
                value=round(firing.measure.value, 3),
                threshold=rule.threshold,
                unit=rule.unit,
                window=window,
            )
            self._raise(alert, None)

    def observe_event(self, event: Event) -> None:
        """Take one event from the agent's queue: queue it for the cloud, and if its type is
        one of :data:`NUDGED_EVENTS` tell the driver and count it towards escalation."""
        rule = NUDGED_EVENTS.get(event.type)
        if rule is None or not self.settings.rule(rule).enabled:
            self._outgoing.append(event)
            return
        message = event.data.get("message")
        if not isinstance(message, str):
            message = _event_message(event)
        alert = Alert(
            id=event.id,
            rule=rule,
            time_ms=event.time_ms,
            message=message,
            severity=event.severity,
        )
        self._raise(alert, event)

    def _raise(self, alert: Alert, event: Event | None) -> None:
        own = self.settings.rule(alert.rule)
        after = (
            own.escalate_after if own.escalate_after is not None else self.settings.escalate_after
        )
        within_min = own.escalate_within_min or self.settings.escalate_within_min
        try:
            repeats = self.store.record(alert, int(within_min * 60_000))
        except sqlite3.Error as exc:
            # The driver is still told and the nudge still sent; only the count is lost.
            self._store_failed(exc)
            repeats = 1
        escalate = after > 0 and repeats >= after
        shown = replace(alert, repeats=repeats, escalated=escalate)
        self.counters[f"alerts_{alert.rule}"] += 1
        log.info("alert %s (%s): %s", alert.rule, alert.id, alert.message)
        if event is None:
            data: dict[str, str | int | float | bool | None] = {
                "rule": alert.rule,
                "message": alert.message,
                "value": alert.value,
                "threshold": alert.threshold,
                "unit": alert.unit,
                "repeats": repeats,
                **alert.window,
            }
            event = Event(id=alert.id, time_ms=alert.time_ms, type=ALERT, data=data)
        self._outgoing.append(event)
        if escalate:
            try:
                self.store.escalated(alert.id, alert.rule)
            except sqlite3.Error as exc:
                self._store_failed(exc)
            severity: Severity = own.severity or (
                "critical" if alert.severity == "critical" else "warning"
            )
            self._outgoing.append(
                Event(
                    id=uuid.uuid4(),
                    time_ms=alert.time_ms,
                    type=escalation_type(alert.rule),
                    severity=severity,
                    data={
                        "rule": alert.rule,
                        "message": alert.message,
                        "repeats": repeats,
                        "within_min": within_min,
                        "alert_id": str(alert.id),
                    },
                )
            )
            self.counters["escalations"] += 1
            log.info("alert %s escalated after %d repeats", alert.rule, repeats)
        self._tell_sinks(lambda sink: sink.show(shown))

    def _store_failed(self, exc: sqlite3.Error) -> None:
        self.counters["alert_store_failures"] += 1
        if self.counters["alert_store_failures"] == 1:
            log.error("the alert record %s fails: %s; alerts go on", self.store.path, exc)

    def _tell_sinks(self, call: Callable[[AlertSink], None]) -> None:
        for sink in self.sinks:
            try:
                call(sink)
            except Exception as exc:  # a broken sink must not stop the agent or other sinks
                self.counters[f"sink_failures_{sink.name}"] += 1
                if sink.name not in self._failing_sinks:
                    log.error("alert sink %s failed: %s", sink.name, exc)
                self._failing_sinks.add(sink.name)
            else:
                self._failing_sinks.discard(sink.name)

    def request_ack(self, alert_id: uuid.UUID, via: str) -> None:
        """Queue the driver's acknowledgement of ``alert_id`` (safe from any thread)."""
        self._acks.put((alert_id, via))

    def poll(self) -> None:
        """Record queued acknowledgements, and turn every acknowledgement not yet sent
        (including those ``fleetlink edge alerts ack`` wrote) into an ``alert_ack`` event."""
        now = self._clock()
        queued = False
        while True:
            try:
                alert_id, via = self._acks.get_nowait()
            except queue.Empty:
                break
            queued = True
            try:
                if not self.store.acknowledge(alert_id, via, int(now * 1000)):
                    self.counters["acks_unknown"] += 1
            except sqlite3.Error as exc:
                self._store_failed(exc)
        if not queued and now < self._next_ack_check:
            return
        self._next_ack_check = now + _CHECK_ACKS_EVERY_S
        try:
            self._send_acks(now)
        except sqlite3.Error as exc:
            self._store_failed(exc)

    def _send_acks(self, now: float) -> None:
        for acked in self.store.unsent_acks():
            self._outgoing.append(
                Event(
                    id=uuid.uuid4(),
                    time_ms=acked.acked_ms or int(now * 1000),
                    type=ALERT_ACK,
                    data={
                        "alert_id": str(acked.id),
                        "rule": acked.rule,
                        "via": acked.acked_via,
                        "acked_ms": acked.acked_ms,
                    },
                )
            )
            self.store.ack_sent(acked.id)
            self._tell_sinks(partial(_acknowledged, alert_id=acked.id))

    @property
    def pending(self) -> bool:
        """Return whether events wait in :meth:`take_events`."""
        return bool(self._outgoing)

    def take_events(self) -> list[Event]:
        """Return (and forget) the events made since the last call, oldest first."""
        events, self._outgoing = self._outgoing, []
        return events

    def close(self) -> None:
        """Close every sink and the alert record."""
        self._tell_sinks(lambda sink: sink.close())
        self.store.close()


def _acknowledged(sink: AlertSink, alert_id: uuid.UUID) -> None:
    sink.acknowledged(alert_id)


def _event_message(event: Event) -> str:
    if event.type == DTC_SET:
        code = event.data.get("code", "")
        return f"New engine trouble code {code}. Have the vehicle checked."
    signal = event.data.get("signal")
    about = f" in {str(signal).rsplit('.', 1)[-1]}" if signal else ""
    return f"Unusual vehicle behaviour{about}. Have the vehicle checked."
