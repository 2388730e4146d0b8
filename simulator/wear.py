"""Injected wear: parts that degrade day by day until they fail, for backtesting maintenance.

A :class:`WornVehicle` lives one simulated day per :meth:`WornVehicle.day` call (time
accelerated) and reports what its data would show that day (the battery's resting low, the
coolant's high, trouble codes, anomaly events, distance) and the failures that happened. Its
:class:`WearState` is what :meth:`fleetlink.simulator.vehicle.Vehicle.set_wear` applies to the
second-by-second model, so a worn vehicle also reads worn over the ELM327.

Failure modes, each with a known failure day:
- ``battery``: sulphation lowers the resting voltage at an accelerating rate; the vehicle fails
  to start below a threshold near 11.8 V.
- ``coolant_leak``: cooling capacity drains away; the coolant runs hotter, code P0217 appears
  above 108 C, the engine overheats when the loss passes a threshold.
- ``ignition``: a failing coil misfires (anomaly events, P030x codes) for 10-60 days, then fails.
- ``wear_part``: brakes, belts, oil; the daily hazard grows once a service interval is overrun.
- ``random``: failures nothing in the data foretells.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WearState:
    """What wear does to the vehicle model now."""

    battery_offset_v: float = 0.0  # added to the battery voltage
    cooling_loss: float = 0.0  # fraction of the radiator's capacity lost, 0..1
    charging_loss_v: float = 0.0  # a failing alternator: volts lost while the engine runs
    misfire: float = 0.0  # share of combustion lost to misfires, 0..1 (rough running)
    air_restriction: float = 0.0  # a clogged air filter: share of the intake flow lost at WOT


@dataclass(frozen=True, slots=True)
class WearDay:
    """One day of one vehicle, as its telemetry and events would show it."""

    day: int
    km: float
    engine_hours: float
    battery_low_v: float
    coolant_high_c: float
    dtcs: tuple[str, ...]
    anomalies: int
    failures: tuple[str, ...]
    serviced: bool
    service_used: float  # the largest used fraction of the service interval, before servicing


@dataclass
class WornVehicle:
    """A vehicle whose parts wear out; every draw comes from ``seed``."""

    seed: int
    interval_km: float = 15_000.0
    interval_days: int = 365
    rates: dict[str, float] = field(
        default_factory=lambda: {
            "battery": 1 / 600,
            "coolant_leak": 1 / 800,
            "ignition": 1 / 900,
            "wear_part": 1 / 4000,
            "random": 1 / 2500,
        }
    )

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        rng = self._rng
        self.km_per_day = rng.uniform(40.0, 320.0)
        self.odometer_km = rng.uniform(0.0, 150_000.0)
        self._battery_decline_v = 0.0
        self._battery_rate = 0.0
        self._battery_limit_v = rng.gauss(11.8, 0.08)
        self._leak = 0.0
        self._leak_rate = 0.0
        self._leak_limit = rng.uniform(0.45, 0.75)
        self._misfire_days_left: int | None = None
        self._service_km = self.odometer_km - rng.uniform(0.0, self.interval_km)
        self._service_day = -rng.randrange(self.interval_days)
        self._lateness = rng.uniform(-0.05, 0.35)  # how far past due this fleet services

    def state(self) -> WearState:
        return WearState(-self._battery_decline_v, self._leak)

    def _service_used(self, day: int) -> float:
        return max(
            (self.odometer_km - self._service_km) / self.interval_km,
            (day - self._service_day) / self.interval_days,
        )

    def day(self, day: int) -> WearDay:
        """Live day ``day`` (counting from 0, in order) and return what it showed."""
        rng = self._rng
        weekday = day % 7 < 5
        km = max(0.0, self.km_per_day * (1.0 if weekday else 0.35) * rng.lognormvariate(0, 0.3))
        self.odometer_km += km
        failures: list[str] = []
        dtcs: list[str] = []
        anomalies = int(rng.random() < 0.03)  # false alarms
        if rng.random() < 0.01:
            dtcs.append("P0420")  # a code unrelated to any failure here

        if self._battery_rate == 0.0 and rng.random() < self.rates["battery"]:
            self._battery_rate = rng.uniform(0.002, 0.012)
        self._battery_decline_v += self._battery_rate * (1.0 + 40.0 * self._battery_decline_v)
        battery = 12.65 - self._battery_decline_v + rng.gauss(0.0, 0.05)
        if battery < 12.1 and rng.random() < 0.1:
            dtcs.append("P0562")
        if battery < self._battery_limit_v:
            failures.append("battery")
            self._battery_decline_v = self._battery_rate = 0.0

        if self._leak_rate == 0.0 and rng.random() < self.rates["coolant_leak"]:
            self._leak_rate = rng.uniform(0.008, 0.04)
        self._leak = min(1.0, self._leak + self._leak_rate * rng.uniform(0.5, 1.5))
        coolant = 92.0 + 40.0 * self._leak + 0.01 * km + rng.gauss(0.0, 1.5)
        if coolant > 108.0 and rng.random() < 0.5:
            dtcs.append("P0217")
        if self._leak > self._leak_limit:
            failures.append("coolant_leak")
            self._leak = self._leak_rate = 0.0

        if self._misfire_days_left is None and rng.random() < self.rates["ignition"]:
            self._misfire_days_left = rng.randint(10, 60)
        if self._misfire_days_left is not None:
            anomalies += int(rng.random() < 0.3)
            if rng.random() < 0.15:
                dtcs.append(f"P030{rng.randint(1, 4)}")
            self._misfire_days_left -= 1
            if self._misfire_days_left <= 0:
                failures.append("ignition")
                self._misfire_days_left = None

        used = self._service_used(day)
        overrun = max(0.0, used - 0.9)
        if rng.random() < self.rates["wear_part"] * math.exp(6.0 * overrun):
            failures.append("wear_part")
        if rng.random() < self.rates["random"]:
            failures.append("random")
        serviced = used >= 1.0 + self._lateness
        if serviced:
            self._service_km, self._service_day = self.odometer_km, day
        return WearDay(
            day,
            km,
            km / 35.0 + rng.uniform(0.2, 1.0),
            battery,
            coolant,
            tuple(dtcs),
            anomalies,
            tuple(failures),
            serviced,
            used,
        )


def simulate_fleet(vehicles: int, days: int, seed: int) -> list[list[WearDay]]:
    """Return ``days`` days of ``vehicles`` worn vehicles (one list per vehicle)."""
    fleet = [WornVehicle(seed * 1_000_003 + n) for n in range(vehicles)]
    return [[v.day(d) for d in range(days)] for v in fleet]
