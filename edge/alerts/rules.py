"""The in-cab rules: each reads the canonical (VSS) signals and measures one quantity; a
:class:`Gate` per rule adds the threshold, hysteresis and cooldown.

A rule that lacks its signals (an OBD-only car has no accelerometer; a value older than five
seconds is not current; NaN is never kept) measures nothing and never fires. Where a better
signal may be missing the rule falls back: harsh braking and acceleration read the CAN
longitudinal acceleration, else the slope of ``Vehicle.Speed``; harsh cornering reads the
lateral acceleration, else yaw rate times speed.

Units of the measured value (and so of the threshold): harsh_brake, harsh_accel and
harsh_corner m/s²; speeding km/h above the limit in force; idling minutes; coolant_overheat
°C; low_battery V (fires below); mil_on and new_dtc 1 when lit or new; fuel_drop percentage
points lost within two minutes.
"""

from __future__ import annotations

import statistics
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from fleetlink.edge.alerts.alert import Severity
from fleetlink.edge.alerts.history import FRESH_MS, SignalHistory
from fleetlink.edge.alerts.zones import SpeedZones
from fleetlink.shared.signals import by_name


def _id(name: str) -> int:
    return by_name(name).id


SPEED = _id("Vehicle.Speed")
ACCEL_LONGITUDINAL = _id("Vehicle.Acceleration.Longitudinal")
ACCEL_LATERAL = _id("Vehicle.Acceleration.Lateral")
YAW_RATE = _id("Vehicle.AngularVelocity.Yaw")
RPM = _id("Vehicle.Powertrain.CombustionEngine.Speed")
COOLANT = _id("Vehicle.Powertrain.CombustionEngine.ECT")
BATTERY = _id("Vehicle.LowVoltageBattery.CurrentVoltage")
MIL = _id("Vehicle.OBD.Status.IsMILOn")
DM1_SPN = _id("Vehicle.OBD.DM1.ActiveSPN")
FUEL_LEVEL = _id("Vehicle.Powertrain.FuelSystem.RelativeLevel")
LATITUDE = _id("Vehicle.CurrentLocation.Latitude")
LONGITUDE = _id("Vehicle.CurrentLocation.Longitude")

# Every signal a rule reads; the engine keeps no history of the others.
READ_SIGNALS = frozenset(
    {
        SPEED,
        ACCEL_LONGITUDINAL,
        ACCEL_LATERAL,
        YAW_RATE,
        RPM,
        COOLANT,
        BATTERY,
        MIL,
        DM1_SPN,
        FUEL_LEVEL,
        LATITUDE,
        LONGITUDE,
    }
)
ENGINE_RUNNING_RPM = 300.0
_KMH_PER_MPS = 3.6
_SLOPE_MIN_MS = 900
_SLOPE_MAX_MS = 3_000
FUEL_SPAN_S = 120


@dataclass(frozen=True, slots=True)
class Measure:
    """A rule's reading: the value the threshold is compared with, and the driver's text."""

    value: float
    text: str


class Rule(ABC):
    """One rule. ``inputs``: the signals whose samples make it measure again; ``above``: it
    fires when the value rises above the threshold (False: when it falls below)."""

    name: str = ""
    unit: str = ""
    above = True
    inputs: frozenset[int] = frozenset()

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    @abstractmethod
    def measure(self, history: SignalHistory) -> Measure | None:
        """Return the current reading, None when the signals it needs are not current."""


def _speed_slope_mps2(history: SignalHistory) -> float | None:
    """Return the slope of the vehicle speed over the last one to three seconds, in m/s²."""
    newest = history.newest_until(SPEED, history.now_ms)
    if newest is None or history.now_ms - newest[0] > FRESH_MS:
        return None
    t1, v1 = newest
    older = history.newest_until(SPEED, t1 - _SLOPE_MIN_MS)
    if older is None or t1 - older[0] > _SLOPE_MAX_MS:
        return None
    t0, v0 = older
    return (v1 - v0) / _KMH_PER_MPS / ((t1 - t0) / 1000)


def _longitudinal_mps2(history: SignalHistory) -> float | None:
    measured = history.latest(ACCEL_LONGITUDINAL, max_age_ms=1_000)
    return measured if measured is not None else _speed_slope_mps2(history)


class HarshBrake(Rule):
    name, unit = "harsh_brake", "m/s²"
    inputs = frozenset({SPEED, ACCEL_LONGITUDINAL})

    def measure(self, history: SignalHistory) -> Measure | None:
        accel = _longitudinal_mps2(history)
        if accel is None:
            return None
        return Measure(-accel, f"Harsh braking ({-accel:.1f} m/s²). Brake earlier and gently.")


class HarshAccel(Rule):
    name, unit = "harsh_accel", "m/s²"
    inputs = frozenset({SPEED, ACCEL_LONGITUDINAL})

    def measure(self, history: SignalHistory) -> Measure | None:
        accel = _longitudinal_mps2(history)
        if accel is None:
            return None
        return Measure(accel, f"Harsh acceleration ({accel:.1f} m/s²). Ease off the pedal.")


class HarshCorner(Rule):
    name, unit = "harsh_corner", "m/s²"
    inputs = frozenset({ACCEL_LATERAL, YAW_RATE})

    def measure(self, history: SignalHistory) -> Measure | None:
        lateral = history.latest(ACCEL_LATERAL, max_age_ms=1_000)
        if lateral is None:
            yaw = history.latest(YAW_RATE, max_age_ms=1_000)
            speed = history.latest(SPEED)
            if yaw is None or speed is None:
                return None
            lateral = yaw * 3.141592653589793 / 180 * speed / _KMH_PER_MPS
        return Measure(abs(lateral), f"Harsh cornering ({abs(lateral):.1f} m/s²). Slow down.")


class Speeding(Rule):
    """Speed above the limit in force: the lowest speed zone at the current GPS position,
    else the configured limit; the threshold is the margin allowed above it."""

    name, unit = "speeding", "km/h"
    inputs = frozenset({SPEED})

    def __init__(
        self, threshold: float, limit_kmh: float | None, zones: Callable[[], SpeedZones]
    ) -> None:
        super().__init__(threshold)
        self.limit_kmh = limit_kmh
        self.zones = zones

    def limit_at_position(self, history: SignalHistory) -> float | None:
        """Return the limit in force: the zone's at the current position, else the default."""
        lat, lon = history.latest(LATITUDE), history.latest(LONGITUDE)
        if lat is not None and lon is not None:
            zone_limit = self.zones().limit_at(lat, lon)
            if zone_limit is not None:
                return zone_limit
        return self.limit_kmh

    def measure(self, history: SignalHistory) -> Measure | None:
        speed = history.latest(SPEED)
        limit = self.limit_at_position(history)
        if speed is None or limit is None:
            return None
        return Measure(
            speed - limit, f"Speeding: {speed:.0f} km/h where the limit is {limit:.0f}. Slow down."
        )


class Idling(Rule):
    name, unit = "idling", "min"
    inputs = frozenset({RPM, SPEED})

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold)
        self._idle_since_ms: int | None = None

    def measure(self, history: SignalHistory) -> Measure | None:
        rpm, speed = history.latest(RPM), history.latest(SPEED)
        if rpm is None or speed is None:
            self._idle_since_ms = None
            return None
        if rpm < ENGINE_RUNNING_RPM or speed >= 2.0:
            self._idle_since_ms = None
            return Measure(0.0, "")
        if self._idle_since_ms is None:
            self._idle_since_ms = history.now_ms
        minutes = (history.now_ms - self._idle_since_ms) / 60_000
        return Measure(minutes, f"Idling for {minutes:.0f} minutes. Switch the engine off.")


class CoolantOverheat(Rule):
    name, unit = "coolant_overheat", "°C"
    inputs = frozenset({COOLANT})

    def measure(self, history: SignalHistory) -> Measure | None:
        coolant = history.latest(COOLANT)
        if coolant is None:
            return None
        return Measure(
            coolant, f"Engine overheating: coolant {coolant:.0f} °C. Stop safely and check."
        )


class LowBattery(Rule):
    """Battery voltage below the threshold while the engine is off (no engine speed, or
    below 300 rpm)."""

    name, unit, above = "low_battery", "V", False
    inputs = frozenset({BATTERY})

    def measure(self, history: SignalHistory) -> Measure | None:
        volts = history.latest(BATTERY, max_age_ms=30_000)
        rpm = history.latest(RPM)
        if volts is None or (rpm is not None and rpm >= ENGINE_RUNNING_RPM):
            return None
        return Measure(volts, f"Battery low: {volts:.1f} V with the engine off.")


class MilOn(Rule):
    name, unit = "mil_on", ""
    inputs = frozenset({MIL})

    def measure(self, history: SignalHistory) -> Measure | None:
        lit = history.latest(MIL)
        if lit is None:
            return None
        return Measure(lit, "Check-engine light on. Have the vehicle checked.")


class NewDm1Fault(Rule):
    """A J1939 DM1 active fault whose SPN differs from the last one seen (1), else 0."""

    name, unit = "new_dtc", ""
    inputs = frozenset({DM1_SPN})

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold)
        self._seen: float | None = None

    def measure(self, history: SignalHistory) -> Measure | None:
        spn = history.latest(DM1_SPN)
        if spn is None:
            return None
        new = spn != 0 and spn != self._seen
        self._seen = spn if spn != 0 else self._seen
        return Measure(1.0 if new else 0.0, f"New engine fault (SPN {spn:.0f}). Have it checked.")


class FuelDrop(Rule):
    """Fuel level lost within two minutes: the highest level then minus the median of the
    last three readings (one low reading of a sloshing tank is not a drop)."""

    name, unit = "fuel_drop", "%"
    inputs = frozenset({FUEL_LEVEL})

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold)
        self._next_ms = 0

    def measure(self, history: SignalHistory) -> Measure | None:
        # Once a second at most: a fast fuel signal would otherwise rescan two minutes each time.
        if history.now_ms < self._next_ms or history.latest(FUEL_LEVEL) is None:
            return None
        self._next_ms = history.now_ms + 1_000
        points = history.since(FUEL_LEVEL, history.now_ms - FUEL_SPAN_S * 1000)
        if len(points) < 4:
            return None
        now = statistics.median(v for _, v in points[-3:])
        drop = max(v for _, v in points[:-3]) - now
        return Measure(drop, f"Fuel level fell {drop:.0f} % in minutes. Check for a leak.")


class Gate:
    """A rule's threshold with hysteresis and cooldown.

    It fires when the value crosses the threshold while armed and the cooldown since its last
    firing has passed; then it stays disarmed until the value is back past the threshold by
    ``hysteresis``. A crossing within the cooldown disarms it without firing.
    """

    def __init__(
        self, threshold: float, hysteresis: float, cooldown_ms: int, above: bool = True
    ) -> None:
        self.threshold = threshold
        self.hysteresis = hysteresis
        self.cooldown_ms = cooldown_ms
        self.above = above
        self.armed = True
        self.last_fired_ms: int | None = None

    def update(self, value: float, time_ms: int) -> bool:
        """Take one reading; return True when the rule fires on it (never for NaN)."""
        if value != value:  # NaN
            return False
        over = value > self.threshold if self.above else value < self.threshold
        if over:
            if not self.armed:
                return False
            self.armed = False
            if self.last_fired_ms is not None and time_ms - self.last_fired_ms < self.cooldown_ms:
                return False
            self.last_fired_ms = time_ms
            return True
        back = (
            value <= self.threshold - self.hysteresis
            if self.above
            else value >= self.threshold + self.hysteresis
        )
        if back:
            self.armed = True
        return False


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule that fired: its reading, at the time of the newest sample."""

    rule: Rule
    measure: Measure
    time_ms: int


@dataclass(slots=True)
class GatedRule:
    rule: Rule
    gate: Gate
    severity: Severity = "warning"


class RuleSet:
    """The rules the device runs, each behind its gate."""

    def __init__(self, rules: list[GatedRule]) -> None:
        self.rules = rules
        self._by_input: dict[int, list[GatedRule]] = {}
        for gated in rules:
            for signal_id in gated.rule.inputs:
                self._by_input.setdefault(signal_id, []).append(gated)

    def names(self) -> list[str]:
        return [g.rule.name for g in self.rules]

    def evaluate(self, history: SignalHistory, signal_id: int) -> list[Firing]:
        """Measure the rules that read ``signal_id`` (just added to ``history``); return
        those that fire."""
        fired = []
        for gated in self._by_input.get(signal_id, ()):
            measure = gated.rule.measure(history)
            if measure is not None and gated.gate.update(measure.value, history.now_ms):
                fired.append(Firing(gated.rule, measure, history.now_ms))
        return fired
