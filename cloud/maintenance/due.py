"""When a maintenance plan falls due for a vehicle: by distance, engine hours or time,
whichever runs out first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

DueStatus = Literal["ok", "due", "overdue", "unknown"]


@dataclass(frozen=True, slots=True)
class Intervals:
    """A plan's intervals (None: not measured that way) and its warning window, as a fraction
    of each interval (0.1: due when 10 % of the interval is left)."""

    km: float | None = None
    hours: float | None = None
    days: int | None = None
    warn_fraction: float = 0.1


@dataclass(frozen=True, slots=True)
class Reading:
    """The odometer, engine hours and date at one moment (None where not known)."""

    odometer_km: float | None
    engine_hours: float | None
    on: date


@dataclass(frozen=True, slots=True)
class Due:
    status: DueStatus
    used_fraction: float | None  # of the interval that runs out first; > 1 when overdue
    due_by: Literal["km", "hours", "days"] | None
    remaining_km: float | None
    remaining_hours: float | None
    remaining_days: int | None


def _remaining(interval: float | None, start: float | None, now: float | None) -> float | None:
    if interval is None or start is None or now is None:
        return None
    return interval - max(0.0, now - start)


def due(intervals: Intervals, last_service: Reading, now: Reading) -> Due:
    """Return the plan's state for a vehicle serviced at ``last_service`` and read ``now``.

    Each measured interval gives a used fraction; the largest decides (whichever first):
    above 1 the plan is overdue, at or above ``1 - warn_fraction`` it is due, else ok.
    A measure whose reading is unknown is left out; with none left the status is unknown.
    """
    remaining_km = _remaining(intervals.km, last_service.odometer_km, now.odometer_km)
    remaining_hours = _remaining(intervals.hours, last_service.engine_hours, now.engine_hours)
    remaining_days = (
        None if intervals.days is None else intervals.days - max(0, (now.on - last_service.on).days)
    )
    fractions: dict[Literal["km", "hours", "days"], float] = {}
    if remaining_km is not None and intervals.km:
        fractions["km"] = 1.0 - remaining_km / intervals.km
    if remaining_hours is not None and intervals.hours:
        fractions["hours"] = 1.0 - remaining_hours / intervals.hours
    if remaining_days is not None and intervals.days:
        fractions["days"] = 1.0 - remaining_days / intervals.days
    if not fractions:
        return Due("unknown", None, None, remaining_km, remaining_hours, remaining_days)
    due_by = max(fractions, key=lambda k: fractions[k])
    used = fractions[due_by]
    status: DueStatus = (
        "overdue" if used > 1.0 else "due" if used >= 1.0 - intervals.warn_fraction else "ok"
    )
    return Due(status, used, due_by, remaining_km, remaining_hours, remaining_days)
