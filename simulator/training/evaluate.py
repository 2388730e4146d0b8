"""The evaluation report: the model and a rule baseline on the same held-out drives.

All see the same 1 Hz rows. The model runs through the agent's own code (LiteRT scorer,
window detector and its debounce); the ``rules`` baseline applies the profile's ``[alerts]``
thresholds (coolant overheat, low battery) with the same number of consecutive seconds as the
model's debounce, and the ``tight`` baseline the same rules with early-warning limits
(:func:`tight_thresholds`). A detection at or after a faulty drive's onset is a hit; any other
detection is a false alarm. A vehicle-day is eight hours of engine running.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetlink.edge.anomaly.card import ModelCard
from fleetlink.edge.anomaly.detector import WindowDetector
from fleetlink.edge.anomaly.scorer import Scorer
from fleetlink.firmware_profiles import AlertThresholds
from fleetlink.simulator.dataset import FAULTS, Dataset

VEHICLE_DAY_H = 8.0
_ECT = "Vehicle.Powertrain.CombustionEngine.ECT"
_BATTERY = "Vehicle.LowVoltageBattery.CurrentVoltage"

Detect = Callable[[npt.NDArray[np.float32]], list[int]]


def model_detections(card: ModelCard, scorer: Scorer, rows: npt.NDArray[np.float32]) -> list[int]:
    """Return the rows (seconds into the drive) at which the model reports an anomaly."""
    detector = WindowDetector(card, scorer)
    return [i for i, row in enumerate(rows) if detector.push(row.astype(np.float64)) is not None]


def model_detector(card: ModelCard, scorer: Scorer) -> Detect:
    """Return the model's detector: the agent's window detector, fresh for each drive."""

    def detect(rows: npt.NDArray[np.float32]) -> list[int]:
        return model_detections(card, scorer, rows)

    return detect


def rule_detector(thresholds: AlertThresholds, features: tuple[str, ...], seconds: int) -> Detect:
    """Return the rule baseline: a detection when a threshold is crossed for ``seconds``
    seconds in a row (re-armed once no rule fires).

    Raises:
        ValueError: the thresholds name no signal among ``features``.
    """
    checks: list[tuple[int, float, bool]] = []
    if thresholds.coolant_overheat_c is not None and _ECT in features:
        checks.append((features.index(_ECT), thresholds.coolant_overheat_c, True))
    if thresholds.low_battery_v is not None and _BATTERY in features:
        checks.append((features.index(_BATTERY), thresholds.low_battery_v, False))
    if not checks:
        raise ValueError("the profile's [alerts] set no threshold on the model's signals")

    def detect(rows: npt.NDArray[np.float32]) -> list[int]:
        over = np.zeros(rows.shape[0], dtype=bool)
        for col, limit, above in checks:
            over |= rows[:, col] >= limit if above else rows[:, col] <= limit
        hits, streak, armed = [], 0, True
        for i, flag in enumerate(over):
            streak = streak + 1 if flag else 0
            if not flag:
                armed = True
            elif streak >= seconds and armed:
                hits.append(i)
                armed = False
        return hits

    return detect


@dataclass
class Figures:
    """One detector's results on a set of drives."""

    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    drives: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    delays_s: dict[str, list[int]] = field(default_factory=lambda: {f: [] for f in FAULTS})
    false_alarms: int = 0
    clean_hours: float = 0.0

    def recall(self, fault: str | None = None) -> float:
        """Return the share of faulty drives detected (of ``fault``, or of all)."""
        faults = [fault] if fault else list(FAULTS)
        drives = sum(self.drives[f] for f in faults)
        return sum(self.hits[f] for f in faults) / drives if drives else float("nan")

    @property
    def false_alarms_per_day(self) -> float:
        """Return false alarms per vehicle-day (eight engine hours)."""
        return self.false_alarms / (self.clean_hours / VEHICLE_DAY_H) if self.clean_hours else 0.0

    def median_delay_s(self, fault: str | None = None) -> float:
        """Return the median seconds from onset to detection (of ``fault``, or of all)."""
        faults = [fault] if fault else list(FAULTS)
        delays = [d for f in faults for d in self.delays_s[f]]
        return statistics.median(delays) if delays else float("nan")


def evaluate(dataset: Dataset, detect: Detect) -> Figures:
    """Return ``detect``'s figures on every drive of ``dataset``."""
    figures = Figures()
    for i, spec in enumerate(dataset.specs):
        rows = dataset.drive(i)
        found = detect(rows)
        onset = spec.onset_s if spec.fault is not None else None
        clean_s = rows.shape[0] if onset is None else onset
        figures.clean_hours += clean_s / 3600.0
        figures.false_alarms += sum(1 for t in found if onset is None or t < onset)
        if spec.fault is None or onset is None:
            continue
        figures.drives[spec.fault] += 1
        after = [t for t in found if t >= onset]
        if after:
            figures.hits[spec.fault] += 1
            figures.delays_s[spec.fault].append(after[0] - onset)
    return figures


def held_out_metrics(figures: Figures, drives: int) -> dict[str, float | int | str]:
    """Return ``figures`` as a model card's metrics (recall overall and per fault, false
    alarms per vehicle-day, median delay)."""
    metrics: dict[str, float | int | str] = {
        "held_out_drives": drives,
        "held_out_recall": round(figures.recall(), 3),
        "held_out_false_alarms_per_vehicle_day": round(figures.false_alarms_per_day, 3),
        "held_out_median_delay_s": round(figures.median_delay_s(), 1),
    }
    for fault in FAULTS:
        metrics[f"held_out_recall_{fault}"] = round(figures.recall(fault), 3)
    return metrics


def tight_thresholds(alerts: AlertThresholds) -> AlertThresholds:
    """Return the rule baseline a technician might tune for early warning: coolant over
    100 C, and under 13.2 V while the engine runs (the alternator charges at about 14 V)."""
    return alerts.model_copy(update={"coolant_overheat_c": 100.0, "low_battery_v": 13.2})


def report(model: Figures, baselines: dict[str, Figures], title: str) -> str:
    """Return the evaluation report: per fault, recall and median delay of the model and
    of each baseline; then overall recall and false alarms per vehicle-day."""
    columns = {"model": model, **baselines}
    head = "".join(f"  {name + ' recall':>14} {'delay s':>7}" for name in columns)
    lines = [title, f"{'fault':<14}{'drives':>7}{head}"]
    for fault in [*FAULTS, None]:
        cells = "".join(
            f"  {f.recall(fault):>14.2f} {f.median_delay_s(fault):>7.0f}" for f in columns.values()
        )
        drives = model.drives[fault] if fault else sum(model.drives.values())
        lines.append(f"{fault or 'all faults':<14}{drives:>7}{cells}")
    alarms = ", ".join(
        f"{name} {f.false_alarms_per_day:.2f} ({f.false_alarms})" for name, f in columns.items()
    )
    lines.append(
        f"false alarms per vehicle-day ({VEHICLE_DAY_H:g} engine hours; "
        f"{model.clean_hours:.1f} h without a fault): {alarms}"
    )
    return "\n".join(lines)
