"""A closed route of GPS waypoints and positions along it by distance travelled."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

_EARTH_RADIUS_M = 6_371_000.0

# A loop of about 7 km through central Amsterdam (Dam, Centraal, Plantage, De Pijp, Vondelpark).
DEFAULT_WAYPOINTS: tuple[tuple[float, float], ...] = (
    (52.37310, 4.89220),
    (52.37800, 4.90030),
    (52.37470, 4.90720),
    (52.37200, 4.91060),
    (52.36630, 4.91300),
    (52.36000, 4.90500),
    (52.35790, 4.89200),
    (52.35800, 4.88100),
    (52.36400, 4.87900),
    (52.37000, 4.88000),
    (52.37600, 4.88400),
)


@dataclass(frozen=True, slots=True)
class Position:
    """A point on the route: degrees latitude and longitude, heading in degrees from north."""

    latitude: float
    longitude: float
    heading_deg: float


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(h))


def _bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360.0


class Route:
    """A loop through ``waypoints`` (the last one joins back to the first).

    Raises ValueError when fewer than two distinct waypoints are given.
    """

    def __init__(self, waypoints: tuple[tuple[float, float], ...] = DEFAULT_WAYPOINTS) -> None:
        if len(waypoints) < 2:
            raise ValueError("a route needs at least two waypoints")
        self._points = (*waypoints, waypoints[0])
        self._starts_m: list[float] = [0.0]
        for a, b in zip(self._points, self._points[1:], strict=False):
            self._starts_m.append(self._starts_m[-1] + _distance_m(a, b))
        self.length_m = self._starts_m[-1]
        if self.length_m <= 0:
            raise ValueError("the route's waypoints are all the same point")

    def position_at(self, distance_m: float) -> Position:
        """Return the position after ``distance_m`` metres along the loop (wrapping around)."""
        d = distance_m % self.length_m
        i = min(bisect.bisect_right(self._starts_m, d) - 1, len(self._points) - 2)
        a, b = self._points[i], self._points[i + 1]
        seg = self._starts_m[i + 1] - self._starts_m[i]
        f = (d - self._starts_m[i]) / seg if seg > 0 else 0.0
        return Position(
            latitude=a[0] + (b[0] - a[0]) * f,
            longitude=a[1] + (b[1] - a[1]) * f,
            heading_deg=_bearing_deg(a, b),
        )
