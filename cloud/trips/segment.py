"""Trips and driving events of one vehicle's day, computed from that day's samples alone.

Everything here is a pure function of the day's samples and device events, sorted before use:
the same data gives the same trips whatever order its batches arrived in (the property the
recompute after late data relies on). A trip that runs past midnight UTC is cut there, so days
are independent (docs/decisions.md, D36).
"""

from __future__ import annotations

import bisect
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Litres of petrol per gram of air at the stoichiometric ratio, for MAF when no fuel rate.
_L_PER_G_AIR = 1 / 14.7 / 745.0
_NAMESPACE = uuid.UUID("5f0c3d1e-7a44-4c59-9a0e-1f2b6c8d9e10")
# Device event types the scorecard counts; the others (DTCs, gaps, ...) are not driving.
SCORED_DEVICE_TYPES = frozenset(
    {
        "harsh_braking",
        "harsh_acceleration",
        "harsh_cornering",
        "speeding",
        "seatbelt_unfastened",
        "phone_use",
        "tailgating",
    }
)
# Derived from speed only for a trip in which the device sent none of the same type.
DERIVED_FROM_SPEED = ("harsh_braking", "harsh_acceleration")

Point = tuple[float, float]  # (unix seconds, value)
# The speed limit (km/h) a speed zone sets at (latitude, longitude), or None outside every zone.
LimitAt = Callable[[float, float], float | None]


@dataclass(frozen=True, slots=True)
class Detection:
    """Thresholds that turn signals into trips and driving events (a tenant's rules set them)."""

    gap_s: float = 300.0
    ignition_rpm: float = 300.0
    moving_kmh: float = 1.0
    min_trip_speed_kmh: float = 5.0
    harsh_braking_ms2: float = 3.5
    harsh_acceleration_ms2: float = 3.0
    harsh_max_dt_s: float = 3.0
    speed_limit_kmh: float = 110.0
    speeding_min_s: float = 10.0
    idling_min_s: float = 120.0


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    id: uuid.UUID
    ts: float
    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DaySignals:
    """One vehicle's samples for one UTC day, per signal, as (unix seconds, value)."""

    speed: list[Point] = field(default_factory=list)
    rpm: list[Point] = field(default_factory=list)
    fuel_rate_lph: list[Point] = field(default_factory=list)
    maf_gs: list[Point] = field(default_factory=list)
    latitude: list[Point] = field(default_factory=list)
    longitude: list[Point] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DrivingEvent:
    id: uuid.UUID
    trip_id: uuid.UUID
    ts: float
    type: str
    source: str  # 'device' or 'derived'
    event_id: uuid.UUID | None = None
    duration_s: float = 0.0
    magnitude: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trip:
    id: uuid.UUID
    started_at: float
    ended_at: float
    distance_km: float
    idle_s: float
    max_speed_kmh: float
    fuel_used_l: float | None
    engine_hours: float
    start_position: tuple[float, float] | None
    end_position: tuple[float, float] | None
    events: tuple[DrivingEvent, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.ended_at - self.started_at


def as_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _sorted(points: Iterable[Point]) -> list[Point]:
    # Duplicate timestamps (overlapping batches) keep one value: the largest, whatever order.
    by_ts: dict[float, float] = {}
    for ts, value in points:
        if ts not in by_ts or value > by_ts[ts]:
            by_ts[ts] = value
    return sorted(by_ts.items())


def _integrate(points: Sequence[Point], start: float, end: float, gap_s: float) -> float:
    """Trapezoidal integral of value * seconds over [start, end], skipping gaps."""
    total = 0.0
    inside = [p for p in points if start <= p[0] <= end]
    for (t0, v0), (t1, v1) in itertools.pairwise(inside):
        dt = t1 - t0
        if dt <= gap_s:
            total += (v0 + v1) / 2 * dt
    return total


def _value_at(points: Sequence[Point], ts: float, start: float) -> float | None:
    """The last value at or before ``ts`` and not before ``start``."""
    found = None
    for t, v in points:
        if t > ts:
            break
        if t >= start:
            found = v
    return found


def _stable_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts))


def compute_day(
    vehicle_id: uuid.UUID, day: DaySignals, rules: Detection, limit_at: LimitAt | None = None
) -> list[Trip]:
    """Return the vehicle's trips of the day with their driving events, oldest first.

    ``limit_at`` gives the speed zones' limit at a position: where the vehicle's last known
    position lies in a zone, speeding is judged against the zone's limit, elsewhere against
    ``rules.speed_limit_kmh``."""
    speed = _sorted(day.speed)
    rpm = _sorted(day.rpm)
    if not speed:
        return []
    times = sorted({t for t, _ in speed} | {t for t, _ in rpm})
    speed_at = dict(speed)
    rpm_at = dict(rpm)
    current_speed = current_rpm = 0.0
    # (ts, speed, engine on) at every distinct sample time, values carried forward.
    timeline: list[tuple[float, float, bool]] = []
    for t in times:
        current_speed = speed_at.get(t, current_speed)
        current_rpm = rpm_at.get(t, current_rpm)
        engine = current_rpm >= rules.ignition_rpm if rpm else current_speed >= rules.moving_kmh
        timeline.append((t, current_speed, engine or current_speed >= rules.moving_kmh))
    runs: list[list[tuple[float, float, bool]]] = []
    for point in timeline:
        if not point[2]:
            if runs and runs[-1]:
                runs.append([])
            continue
        if runs and runs[-1] and point[0] - runs[-1][-1][0] <= rules.gap_s:
            runs[-1].append(point)
        else:
            runs.append([point])
    trips = []
    for run in runs:
        if run and max(p[1] for p in run) >= rules.min_trip_speed_kmh:
            trips.append(_trip(vehicle_id, run, speed, day, rules, limit_at))
    return trips


def _trip(
    vehicle_id: uuid.UUID,
    run: list[tuple[float, float, bool]],
    speed: list[Point],
    day: DaySignals,
    rules: Detection,
    limit_at: LimitAt | None,
) -> Trip:
    start, end = run[0][0], run[-1][0]
    trip_id = _stable_id(vehicle_id, "trip", start)
    idle_s = engine_s = 0.0
    idle_started: float | None = None
    events: list[DrivingEvent] = []

    def close_idle(at: float) -> None:
        nonlocal idle_started
        if idle_started is not None and at - idle_started >= rules.idling_min_s:
            events.append(
                DrivingEvent(
                    _stable_id(vehicle_id, "idling", idle_started),
                    trip_id,
                    idle_started,
                    "idling",
                    "derived",
                    duration_s=at - idle_started,
                )
            )
        idle_started = None

    for (t0, v0, on0), (t1, _, _) in itertools.pairwise(run):
        dt = t1 - t0
        if dt > rules.gap_s:
            close_idle(t0)
            continue
        if on0:
            engine_s += dt
        if v0 < rules.moving_kmh:
            idle_s += dt
            if idle_started is None:
                idle_started = t0
        else:
            close_idle(t0)
    close_idle(end)

    in_trip = [p for p in speed if start <= p[0] <= end]
    fuel_rate = _sorted(day.fuel_rate_lph)
    if fuel_rate:
        fuel: float | None = _integrate(fuel_rate, start, end, rules.gap_s) / 3600
    elif day.maf_gs:
        fuel = _integrate(_sorted(day.maf_gs), start, end, rules.gap_s) * _L_PER_G_AIR
    else:
        fuel = None
    lat, lon = _sorted(day.latitude), _sorted(day.longitude)

    def position(ts: float) -> tuple[float, float] | None:
        la, lo = _value_at(lat, ts, start), _value_at(lon, ts, start)
        return None if la is None or lo is None else (la, lo)

    device = sorted(
        (e for e in day.events if e.type in SCORED_DEVICE_TYPES and start <= e.ts <= end),
        key=lambda e: (e.ts, str(e.id)),
    )
    sent = {e.type for e in device}
    events.extend(
        DrivingEvent(
            _stable_id(vehicle_id, "device", e.id),
            trip_id,
            e.ts,
            e.type,
            "device",
            event_id=e.id,
            duration_s=float(e.data.get("duration_s", 0) or 0),
            magnitude=_number(e.data),
            data=dict(e.data),
        )
        for e in device
    )
    events.extend(_harsh(vehicle_id, trip_id, in_trip, rules, skip=sent))
    if "speeding" not in sent:
        limits = _limits(in_trip, lat, lon, start, rules.speed_limit_kmh, limit_at)
        events.extend(_speeding(vehicle_id, trip_id, in_trip, limits, rules))
    return Trip(
        id=trip_id,
        started_at=start,
        ended_at=end,
        distance_km=_integrate(speed, start, end, rules.gap_s) / 3600,
        idle_s=idle_s,
        max_speed_kmh=max((v for _, v in in_trip), default=0.0),
        fuel_used_l=fuel,
        engine_hours=engine_s / 3600,
        start_position=position(start),
        end_position=position(end),
        events=tuple(sorted(events, key=lambda e: (e.ts, e.type, str(e.id)))),
    )


def _number(data: dict[str, Any]) -> float | None:
    for value in data.values():
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _harsh(
    vehicle_id: uuid.UUID,
    trip_id: uuid.UUID,
    speed: list[Point],
    rules: Detection,
    skip: set[str],
) -> list[DrivingEvent]:
    """Harsh braking and acceleration read from consecutive speed samples: one event per run
    of samples beyond the threshold, at the run's start, with its peak in m/s²."""
    found: list[DrivingEvent] = []
    episode: tuple[str, float, float] | None = None  # type, start, peak

    def close() -> None:
        nonlocal episode
        if episode is not None and episode[0] not in skip:
            kind, at, peak = episode
            found.append(
                DrivingEvent(
                    _stable_id(vehicle_id, kind, at),
                    trip_id,
                    at,
                    kind,
                    "derived",
                    magnitude=round(peak, 3),
                    data={"peak_ms2": round(peak, 3)},
                )
            )
        episode = None

    for (t0, v0), (t1, v1) in itertools.pairwise(speed):
        dt = t1 - t0
        kind = None
        accel = 0.0
        if 0 < dt <= rules.harsh_max_dt_s:
            accel = (v1 - v0) / 3.6 / dt
            if accel <= -rules.harsh_braking_ms2:
                kind = "harsh_braking"
            elif accel >= rules.harsh_acceleration_ms2:
                kind = "harsh_acceleration"
        if kind is None or (episode is not None and episode[0] != kind):
            close()
        if kind is not None:
            if episode is None:
                episode = (kind, t0, abs(accel))
            else:
                episode = (kind, episode[1], max(episode[2], abs(accel)))
    close()
    return found


def _limits(
    speed: list[Point],
    lat: list[Point],
    lon: list[Point],
    start: float,
    default_kmh: float,
    limit_at: LimitAt | None,
) -> list[float]:
    """The speed limit at each speed sample: the zone limit at the last position known at or
    before it (within the trip), else ``default_kmh``."""
    if limit_at is None or not lat or not lon:
        return [default_kmh] * len(speed)
    lat_ts, lon_ts = [t for t, _ in lat], [t for t, _ in lon]
    seen: dict[tuple[float, float], float | None] = {}
    limits = []
    for t, _ in speed:
        i, j = bisect.bisect_right(lat_ts, t) - 1, bisect.bisect_right(lon_ts, t) - 1
        zone = None
        if i >= 0 and j >= 0 and lat_ts[i] >= start and lon_ts[j] >= start:
            where = (lat[i][1], lon[j][1])
            if where not in seen:
                seen[where] = limit_at(*where)
            zone = seen[where]
        limits.append(default_kmh if zone is None else zone)
    return limits


def _speeding(
    vehicle_id: uuid.UUID,
    trip_id: uuid.UUID,
    speed: list[Point],
    limits: list[float],
    rules: Detection,
) -> list[DrivingEvent]:
    """Episodes above the speed limit in force (``limits``, one per sample) lasting at least
    ``speeding_min_s``, with how far over (peak) and how long."""
    found: list[DrivingEvent] = []
    started: float | None = None
    peak = (0.0, 0.0, 0.0)  # km/h over, speed, limit
    for (t, v), limit in zip([*speed, (float("inf"), 0.0)], [*limits, 0.0], strict=True):
        if v > limit and t != float("inf"):
            if started is None:
                started, peak = t, (v - limit, v, limit)
            if v - limit > peak[0]:
                peak = (v - limit, v, limit)
            continue
        if started is not None:
            last = t if t != float("inf") else speed[-1][0]
            duration = last - started
            if duration >= rules.speeding_min_s:
                found.append(
                    DrivingEvent(
                        _stable_id(vehicle_id, "speeding", started),
                        trip_id,
                        started,
                        "speeding",
                        "derived",
                        duration_s=duration,
                        magnitude=round(peak[0], 3),
                        data={"limit_kmh": peak[2], "max_kmh": round(peak[1], 3)},
                    )
                )
            started = None
    return found
