"""The probability that a vehicle fails within 7, 30 and 90 days, and why.

Method (decision D51): one logistic regression per horizon over eight documented features of
the vehicle's last 30 days, fitted on simulated fleets with injected wear
(``fleetlink bench maintenance --write-model``). A probability is
``1 / (1 + exp(-(intercept + sum(weight_i * feature_i))))``; each feature's share of the
30-day log-odds is its explanation. The coefficients ship as data (``risk_model.json``).
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

HORIZONS_DAYS = (7, 30, 90)
WINDOW_DAYS = 30

FEATURES: dict[str, str] = {
    "battery_deficit_v": "how far the battery's daily low of the last 3 days is below 12.5 V",
    "battery_decline_v_30d": "how fast the battery's daily low fell over 30 days (V per 30 days)",
    "coolant_excess_c": "how far the coolant's daily high of the last 3 days is above 100 C",
    "coolant_rise_c_30d": "how fast the coolant's daily high rose over 30 days (C per 30 days)",
    "dtcs_30d": "log(1 + trouble codes set in 30 days)",
    "anomalies_30d": "log(1 + anomaly events in 30 days)",
    "km_per_day_100": "distance per day over 30 days, in 100 km",
    "service_used": "the largest used fraction of any maintenance plan (1: due now)",
}


@dataclass(frozen=True, slots=True)
class DaySummary:
    """What one day of a vehicle's data says (None where the vehicle did not report it)."""

    day: date
    km: float = 0.0
    battery_low_v: float | None = None
    coolant_high_c: float | None = None
    dtcs: int = 0
    anomalies: int = 0


def _slope_per_30d(points: Sequence[tuple[float, float]]) -> float:
    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return 0.0
    xs, ys = zip(*points, strict=True)
    return statistics.linear_regression(xs, ys).slope * 30.0


def features(days: Sequence[DaySummary], today: date, service_used: float) -> dict[str, float]:
    """Return the model's features from the summaries of the WINDOW_DAYS before ``today``."""
    window = [d for d in days if 0 < (today - d.day).days <= WINDOW_DAYS]
    recent = [d for d in window if (today - d.day).days <= 3]
    battery = [((d.day - today).days, d.battery_low_v) for d in window if d.battery_low_v]
    coolant = [((d.day - today).days, d.coolant_high_c) for d in window if d.coolant_high_c]
    recent_battery = [d.battery_low_v for d in recent if d.battery_low_v is not None]
    recent_coolant = [d.coolant_high_c for d in recent if d.coolant_high_c is not None]
    return {
        "battery_deficit_v": max(0.0, 12.5 - statistics.fmean(recent_battery))
        if recent_battery
        else 0.0,
        "battery_decline_v_30d": max(0.0, -_slope_per_30d(battery)),
        "coolant_excess_c": max(0.0, statistics.fmean(recent_coolant) - 100.0)
        if recent_coolant
        else 0.0,
        "coolant_rise_c_30d": max(0.0, _slope_per_30d(coolant)),
        "dtcs_30d": math.log1p(sum(d.dtcs for d in window)),
        "anomalies_30d": math.log1p(sum(d.anomalies for d in window)),
        "km_per_day_100": sum(d.km for d in window) / WINDOW_DAYS / 100.0,
        "service_used": min(2.0, max(0.0, service_used)),
    }


@dataclass(frozen=True, slots=True)
class Contribution:
    feature: str
    value: float
    log_odds: float  # weight * value in the 30-day model
    meaning: str


@dataclass(frozen=True, slots=True)
class Risk:
    probability: dict[int, float]  # horizon in days -> probability of a failure within it
    contributions: list[Contribution]  # largest first
    features: dict[str, float]


class RiskModel:
    """Logistic coefficients per horizon: ``{"horizons": {"7": {"intercept": b,
    "weights": {feature: w}}}, "fitted_on": "..."}``."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.fitted_on = str(document.get("fitted_on", ""))
        self.horizons: dict[int, tuple[float, dict[str, float]]] = {}
        for horizon in HORIZONS_DAYS:
            entry = document["horizons"][str(horizon)]
            weights = {k: float(entry["weights"][k]) for k in FEATURES}
            self.horizons[horizon] = (float(entry["intercept"]), weights)

    def assess(self, values: dict[str, float]) -> Risk:
        """Return the probabilities (never lower for a longer horizon) and their explanation."""
        probability: dict[int, float] = {}
        floor = 0.0
        for horizon, (intercept, weights) in self.horizons.items():
            z = intercept + sum(weights[k] * values[k] for k in FEATURES)
            floor = max(floor, 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))
            probability[horizon] = floor
        weights_30 = self.horizons[30][1]
        contributions = sorted(
            (Contribution(k, values[k], weights_30[k] * values[k], FEATURES[k]) for k in FEATURES),
            key=lambda c: -abs(c.log_odds),
        )
        return Risk(probability, contributions, values)


@functools.cache
def packaged_model() -> RiskModel:
    """Return the model shipped with Fleetlink (``risk_model.json``), read once."""
    text = resources.files("fleetlink.cloud.maintenance").joinpath("risk_model.json")
    return RiskModel(json.loads(text.read_text()))
