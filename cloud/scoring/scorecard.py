"""A driver's scorecard: points per driving event under the tenant's rules, normalised per
100 km and taken from 100, with every point traced to the event that earned it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from fleetlink.cloud.scoring.activity import Activity, ScoredEventRow
from fleetlink.cloud.scoring.rules import ScoringRules

# A scorecard lists at most this many events; totals always count every one.
MAX_LISTED_EVENTS = 2000


class ScoredEvent(BaseModel):
    id: uuid.UUID
    ts: datetime
    type: str
    source: str = Field(description="'device' (the device reported it) or 'derived' (speed)")
    event_id: uuid.UUID | None = Field(None, description="The device's event, when it sent one")
    trip_id: uuid.UUID
    vehicle_id: uuid.UUID
    duration_s: float
    magnitude: float | None = Field(
        None, description="Peak m/s² (harsh), km/h over the limit (speeding)"
    )
    points: float
    why: str = Field(description="The rule that gave the points")
    data: dict[str, Any] = Field(default_factory=dict)


class ScoreLine(BaseModel):
    type: str
    events: int
    points: float
    points_per_100km: float


class Scorecard(BaseModel):
    driver_id: uuid.UUID
    from_: date = Field(alias="from")
    to: date = Field(description="Last day (inclusive)")
    trips: int
    distance_km: float
    driving_s: float
    idle_s: float
    fuel_used_l: float | None
    points: float
    points_per_100km: float | None
    score: float | None = Field(
        description="100 - points per 100 km, at least 0; None below the rules' min_distance_km"
    )
    band: str | None
    lines: list[ScoreLine]
    events: list[ScoredEvent]
    events_listed_all: bool = True

    model_config = {"populate_by_name": True}


def event_points(event: ScoredEventRow, rules: ScoringRules) -> tuple[float, str]:
    """Return the points ``event`` earns under ``rules`` and the rule that says so."""
    minutes = event.duration_s / 60
    if event.type == "speeding":
        over = event.magnitude or 0.0
        band = rules.speeding_band(over)
        if band is None:
            return 0.0, "no speeding band applies"
        points = band.points + band.points_per_minute * minutes
        return points, (
            f"speeding band over {band.over_kmh:g} km/h (peak {over:.1f} over): "
            f"{band.points:g} + {band.points_per_minute:g}/min x {minutes:.2f} min"
        )
    for rule in rules.rules:
        if rule.type == event.type:
            points = rule.points + rule.points_per_minute * minutes
            return points, (
                f"{rule.type}: {rule.points:g} + {rule.points_per_minute:g}/min x {minutes:.2f} min"
            )
    return 0.0, f"no rule weighs {event.type}"


def scorecard(
    driver: uuid.UUID, start: date, last: date, activity: Activity, rules: ScoringRules
) -> Scorecard:
    """Return ``driver``'s scorecard for the days ``start``..``last`` from ``activity``."""
    distance = activity.distance_km
    per_type: dict[str, list[float]] = defaultdict(list)
    listed: list[ScoredEvent] = []
    for e in activity.events:
        points, why = event_points(e, rules)
        per_type[e.type].append(points)
        if len(listed) < MAX_LISTED_EVENTS:
            listed.append(
                ScoredEvent(
                    id=e.id,
                    ts=e.ts,
                    type=e.type,
                    source=e.source,
                    event_id=e.event_id,
                    trip_id=e.trip_id,
                    vehicle_id=e.vehicle_id,
                    duration_s=e.duration_s,
                    magnitude=e.magnitude,
                    points=round(points, 4),
                    why=why,
                    data=e.data,
                )
            )
    total = sum(sum(p) for p in per_type.values())

    def per_100(points: float) -> float:
        return round(points * 100 / distance, 4) if distance > 0 else 0.0

    scored = distance >= rules.min_distance_km and distance > 0
    score = round(max(0.0, 100 - total * 100 / distance), 2) if scored else None
    fuels = [t.fuel_used_l for t in activity.trips if t.fuel_used_l is not None]
    return Scorecard(
        driver_id=driver,
        from_=start,
        to=last,
        trips=len(activity.trips),
        distance_km=round(distance, 4),
        driving_s=round(sum(t.duration_s for t in activity.trips), 3),
        idle_s=round(sum(t.idle_s for t in activity.trips), 3),
        fuel_used_l=round(sum(fuels), 4) if fuels else None,
        points=round(total, 4),
        points_per_100km=per_100(total) if distance > 0 else None,
        score=score,
        band=rules.band_for(score) if score is not None else None,
        lines=[
            ScoreLine(
                type=kind,
                events=len(points),
                points=round(sum(points), 4),
                points_per_100km=per_100(sum(points)),
            )
            for kind, points in sorted(per_type.items())
        ],
        events=listed,
        events_listed_all=len(listed) == len(activity.events),
    )
