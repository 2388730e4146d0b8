"""The metrics badges and challenges are stated in (see rules.METRIC_DESCRIPTION), measured on a
driver's activity over a range of days."""

from __future__ import annotations

from fleetlink.cloud.scoring.activity import Activity
from fleetlink.cloud.scoring.rules import ScoringRules
from fleetlink.cloud.scoring.scorecard import event_points


def metric_value(metric: str, activity: Activity, rules: ScoringRules) -> float | None:
    """Return ``metric`` measured on ``activity``, or None where it is undefined (no driving,
    no fuel readings)."""
    trips = activity.trips
    distance = activity.distance_km
    kind, _, event_type = metric.partition(":")
    if kind == "distance_km":
        return round(distance, 4)
    if kind == "trips":
        return float(len(trips))
    if kind == "score":
        if distance < rules.min_distance_km or distance <= 0:
            return None
        points = sum(event_points(e, rules)[0] for e in activity.events)
        return round(max(0.0, 100 - points * 100 / distance), 2)
    if kind == "idle_share":
        driving = sum(t.duration_s for t in trips)
        return round(sum(t.idle_s for t in trips) / driving, 6) if driving > 0 else None
    if kind == "fuel_l_per_100km":
        fuelled = [t for t in trips if t.fuel_used_l is not None]
        km = sum(t.distance_km for t in fuelled)
        return round(sum(t.fuel_used_l or 0 for t in fuelled) * 100 / km, 4) if km > 0 else None
    matching = [e for e in activity.events if e.type == event_type]
    if kind == "events":
        return float(len(matching))
    if kind == "km_since":
        last = max((e.ts for e in matching), default=None)
        return round(sum(t.distance_km for t in trips if last is None or t.started_at > last), 4)
    if kind == "streak_days_without":
        bad_days = {e.ts.date() for e in matching}
        streak = 0
        for day in sorted({t.day for t in trips}, reverse=True):
            if day in bad_days:
                break
            streak += 1
        return float(streak)
    raise ValueError(f"unknown metric {metric!r}")
