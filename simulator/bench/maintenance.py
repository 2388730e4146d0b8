"""``fleetlink bench maintenance``: backtest the failure-probability model against a plain
interval-only schedule on simulated fleets with injected wear (simulator/wear.py).

The model is fitted on one fleet (``--train-seed``) and scored on another (``--seed``) the
fit never saw. Both are scored in the same run, at each horizon:
- Brier score (lower is better) of the model, of an interval-only logistic model (its single
  feature: the used fraction of the service interval) and of the fleet's base rate;
- for the 30-day horizon, failure-level recall (a failure counts as foreseen when the vehicle
  was flagged on some day of the 30 before it), flag precision (a flagged vehicle-day is right
  when a failure follows within 30 days) and the median lead time of the first flag. The
  plain schedule flags a vehicle whose service interval runs out within 30 days.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from fleetlink.cloud.maintenance.risk import FEATURES, HORIZONS_DAYS, DaySummary, features
from fleetlink.simulator.wear import WearDay, simulate_fleet

WARMUP_DAYS = 30
EPOCH = date(2026, 1, 1)


@dataclass
class Rows:
    x: np.ndarray  # features, in FEATURES order
    service: np.ndarray  # the used fraction and the 30-day projection of the plain schedule
    y: dict[int, np.ndarray]  # horizon -> failure within it
    key: list[tuple[int, int]]  # (vehicle, day)
    failures: list[tuple[int, int]]  # (vehicle, day) of each failure


def _summary(d: WearDay) -> DaySummary:
    return DaySummary(
        EPOCH + timedelta(days=d.day),
        d.km,
        d.battery_low_v,
        d.coolant_high_c,
        len(d.dtcs),
        d.anomalies,
    )


def rows(fleet: list[list[WearDay]], step: int) -> Rows:
    """Return one row per vehicle and every ``step``-th day after the warm-up, with its labels."""
    x, service, key, failures = [], [], [], []
    y: dict[int, list[bool]] = {h: [] for h in HORIZONS_DAYS}
    for v, days in enumerate(fleet):
        summaries = [_summary(d) for d in days]
        fail_days = [d.day for d in days if d.failures for _ in d.failures]
        failures += [(v, f) for f in fail_days if f >= WARMUP_DAYS]
        horizon_max = max(HORIZONS_DAYS)
        for t in range(WARMUP_DAYS, len(days) - horizon_max, step):
            today = EPOCH + timedelta(days=t)
            used = days[t - 1].service_used
            values = features(summaries[t - WARMUP_DAYS : t], today, used)
            x.append([values[k] for k in FEATURES])
            km_rate = values["km_per_day_100"] * 100.0 / 15_000.0
            service.append([used, used + 30 * max(km_rate, 1 / 365) >= 1.0])
            key.append((v, t))
            for h in HORIZONS_DAYS:
                y[h].append(any(t <= f < t + h for f in fail_days))
    return Rows(
        np.array(x),
        np.array(service, dtype=float),
        {h: np.array(v) for h, v in y.items()},
        key,
        failures,
    )


def fit(train: Rows) -> dict[str, object]:
    """Return the model document (as risk_model.json holds it) fitted on ``train``."""
    horizons = {}
    for h in HORIZONS_DAYS:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(train.x, train.y[h])
        horizons[str(h)] = {
            "intercept": round(float(model.intercept_[0]), 5),
            "weights": {
                k: round(float(w), 5) for k, w in zip(FEATURES, model.coef_[0], strict=True)
            },
        }
    return {"horizons": horizons}


def _probabilities(document: dict[str, object], x: np.ndarray, h: int) -> np.ndarray:
    entry = document["horizons"][str(h)]  # type: ignore[index]
    w = np.array([entry["weights"][k] for k in FEATURES])
    return 1.0 / (1.0 + np.exp(-(entry["intercept"] + x @ w)))


def _event_scores(test: Rows, flags: np.ndarray) -> tuple[float, float, float | None]:
    """Return (recall over failures, precision over flags, median lead days) for 30 days."""
    flagged: dict[int, list[int]] = {}
    for (v, t), f in zip(test.key, flags, strict=True):
        if f:
            flagged.setdefault(v, []).append(t)
    leads, caught = [], 0
    for v, day in test.failures:
        before = [t for t in flagged.get(v, []) if day - 30 < t <= day]
        if before:
            caught += 1
            leads.append(day - min(before))
    precision = float(test.y[30][flags].mean()) if flags.any() else 0.0
    recall = caught / len(test.failures) if test.failures else 0.0
    return recall, precision, (statistics.median(leads) if leads else None)


def _threshold(document: dict[str, object], train: Rows) -> float:
    """Return the 30-day probability threshold with the best F1 on the training fleet."""
    p = _probabilities(document, train.x, 30)
    best, best_f1 = 0.5, -1.0
    for threshold in np.linspace(0.05, 0.95, 91):
        flags = p >= threshold
        tp = float((flags & train.y[30]).sum())
        f1 = 2 * tp / (flags.sum() + train.y[30].sum()) if flags.any() else 0.0
        if f1 > best_f1:
            best, best_f1 = float(threshold), f1
    return best


def report(
    vehicles: int, days: int, seed: int, train_seed: int, step: int, write_model: Path | None
) -> str:
    train = rows(simulate_fleet(vehicles, days, train_seed), step)
    test = rows(simulate_fleet(vehicles, days, seed), step)
    document = fit(train)
    document["fitted_on"] = (
        f"fleetlink bench maintenance --vehicles {vehicles} --days {days} "
        f"--train-seed {train_seed} --step {step}"
    )
    if write_model is not None:
        write_model.write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        f"fleet: {vehicles} vehicles x {days} days, trained on seed {train_seed}, "
        f"scored on seed {seed} ({len(test.key)} vehicle-days, {len(test.failures)} failures)",
        "",
        f"{'horizon':>8} {'base rate':>10} {'Brier model':>12} {'Brier interval':>15} "
        f"{'Brier base rate':>16}",
    ]
    for h in HORIZONS_DAYS:
        rate = float(train.y[h].mean())
        interval = LogisticRegression().fit(train.service[:, :1], train.y[h])
        p_interval = interval.predict_proba(test.service[:, :1])[:, 1]
        p_model = _probabilities(document, test.x, h)
        actual = test.y[h].astype(float)
        lines.append(
            f"{h:>6} d {actual.mean():>10.3f} {np.mean((p_model - actual) ** 2):>12.4f} "
            f"{np.mean((p_interval - actual) ** 2):>15.4f} {np.mean((rate - actual) ** 2):>16.4f}"
        )
    threshold = _threshold(document, train)
    model_flags = _probabilities(document, test.x, 30) >= threshold
    schedule_flags = test.service[:, 1] > 0
    lines += ["", f"30-day flags {'recall':>8} {'precision':>10} {'median lead':>12}"]
    for name, flags in ((f"model p>={threshold:.2f}", model_flags), ("interval", schedule_flags)):
        recall, precision, lead = _event_scores(test, flags)
        lead_text = "-" if lead is None else f"{lead:.0f} d"
        lines.append(f"{name:<14} {recall:>6.2f} {precision:>10.2f} {lead_text:>12}")
    if write_model is not None:
        lines += ["", f"model written to {write_model}"]
    return "\n".join(lines)
