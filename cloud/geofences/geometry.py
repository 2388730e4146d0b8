"""Geofence geometry: GeoJSON polygons and circles, validated, and point-in-fence tests.

Coordinates follow GeoJSON: ``[longitude, latitude]`` in degrees (WGS 84). A circle is a
GeoJSON ``Point`` with a radius in metres, measured on the sphere (haversine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import Polygon, shape
from shapely.validation import explain_validity

EARTH_RADIUS_M = 6_371_000.0
MAX_VERTICES = 10_000
MAX_RADIUS_M = 500_000.0


class GeometryError(ValueError):
    """Raised for a geometry that cannot be a fence; the message says what is wrong."""


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the great-circle distance between two points, in metres."""
    p1, l1, p2, l2 = map(math.radians, (lat1, lon1, lat2, lon2))
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Bounds:
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float

    def holds(self, lat: float, lon: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon


@dataclass(frozen=True, slots=True)
class Shape:
    """A validated fence shape: a polygon, or a circle (centre and radius)."""

    geometry: dict[str, Any]
    radius_m: float | None
    bounds: Bounds
    polygon: Polygon | None

    def contains(self, lat: float, lon: float) -> bool:
        """Return whether the point lies inside (or on the edge of) the shape."""
        if not self.bounds.holds(lat, lon):
            return False
        if self.polygon is not None:
            return bool(shapely.intersects_xy(self.polygon, lon, lat))
        centre_lon, centre_lat = self.geometry["coordinates"]
        assert self.radius_m is not None
        return distance_m(lat, lon, centre_lat, centre_lon) <= self.radius_m


def _check_position(lon: Any, lat: Any, where: str) -> tuple[float, float]:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat)):
        raise GeometryError(f"{where}: a position is [longitude, latitude] in numbers")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GeometryError(f"{where}: [{lon}, {lat}] is not a longitude and latitude")
    return float(lon), float(lat)


def parse_shape(geometry: dict[str, Any], radius_m: float | None) -> Shape:
    """Return the fence shape of a GeoJSON ``Polygon`` (no radius) or ``Point`` (with
    ``radius_m``); raise GeometryError naming what is wrong."""
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "Point":
        if radius_m is None:
            raise GeometryError("a Point fence is a circle: give radius_m")
        if not 0 < radius_m <= MAX_RADIUS_M:
            raise GeometryError(f"radius_m must be in (0, {MAX_RADIUS_M:.0f}]")
        if not isinstance(coordinates, list) or len(coordinates) != 2:
            raise GeometryError("geometry.coordinates: a Point is [longitude, latitude]")
        lon, lat = _check_position(coordinates[0], coordinates[1], "geometry.coordinates")
        dlat = math.degrees(radius_m / EARTH_RADIUS_M)
        cos_lat = max(math.cos(math.radians(lat)), 1e-6)
        dlon = min(180.0, dlat / cos_lat)
        bounds = Bounds(lat - dlat, lat + dlat, lon - dlon, lon + dlon)
        return Shape({"type": "Point", "coordinates": [lon, lat]}, radius_m, bounds, None)
    if kind != "Polygon":
        raise GeometryError("geometry.type must be Polygon, or Point with radius_m")
    if radius_m is not None:
        raise GeometryError("radius_m belongs to circles (Point) only")
    if not isinstance(coordinates, list) or not coordinates:
        raise GeometryError("geometry.coordinates: a Polygon is a list of linear rings")
    rings: list[list[list[float]]] = []
    vertices = 0
    for r, ring in enumerate(coordinates):
        if not isinstance(ring, list) or len(ring) < 4:
            raise GeometryError(f"geometry.coordinates[{r}]: a ring has at least 4 positions")
        vertices += len(ring)
        if vertices > MAX_VERTICES:
            raise GeometryError(f"a fence has at most {MAX_VERTICES} vertices")
        points = []
        for p, position in enumerate(ring):
            if not isinstance(position, list) or len(position) != 2:
                raise GeometryError(
                    f"geometry.coordinates[{r}][{p}]: a position is [longitude, latitude]"
                )
            where = f"geometry.coordinates[{r}][{p}]"
            points.append(list(_check_position(position[0], position[1], where)))
        if points[0] != points[-1]:
            raise GeometryError(f"geometry.coordinates[{r}]: a ring ends where it starts")
        rings.append(points)
    polygon = shape({"type": "Polygon", "coordinates": rings})
    if not isinstance(polygon, Polygon) or polygon.is_empty:
        raise GeometryError("geometry: the polygon has no area")
    if not polygon.is_valid:
        raise GeometryError(f"geometry: the polygon is not valid ({explain_validity(polygon)})")
    if polygon.area == 0:
        raise GeometryError("geometry: the polygon has no area")
    shapely.prepare(polygon)
    min_lon, min_lat, max_lon, max_lat = polygon.bounds
    return Shape(
        {"type": "Polygon", "coordinates": rings},
        None,
        Bounds(min_lat, max_lat, min_lon, max_lon),
        polygon,
    )
