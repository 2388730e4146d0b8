"""The speed limit the cloud's speed zones set at a position, from the device's fence copy."""

from __future__ import annotations

import math

import shapely
from shapely.geometry import Polygon

from fleetlink.shared.messages import DeviceFence, GeofenceSet

_EARTH_RADIUS_M = 6_371_000.0


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, l1, p2, l2 = map(math.radians, (lat1, lon1, lat2, lon2))
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((l2 - l1) / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class SpeedZones:
    """The speed zones of one fence set (fences without a limit are left out)."""

    def __init__(self, fences: GeofenceSet | None) -> None:
        self.version = -1 if fences is None else fences.version
        zones = [] if fences is None else [f for f in fences.fences if f.speed_limit_kmh]
        self._zones: list[tuple[DeviceFence, Polygon | None]] = [
            (f, Polygon(f.coordinates) if f.kind == "polygon" else None) for f in zones
        ]

    def __len__(self) -> int:
        return len(self._zones)

    def limit_at(self, lat: float, lon: float) -> float | None:
        """Return the lowest limit (km/h) of the zones holding the point, None outside all."""
        limits = []
        for fence, polygon in self._zones:
            if polygon is not None:
                inside = bool(shapely.intersects_xy(polygon, lon, lat))
            else:
                centre_lon, centre_lat = fence.coordinates[0]
                inside = _distance_m(lat, lon, centre_lat, centre_lon) <= (fence.radius_m or 0.0)
            if inside and fence.speed_limit_kmh is not None:
                limits.append(fence.speed_limit_kmh)
        return min(limits, default=None)
