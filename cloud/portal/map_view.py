"""The live map as data for server-rendered SVG: vehicles and geofences projected in Web
Mercator onto a fixed view box, with map tiles behind them when a tile URL is configured.

The browser's script moves a marker with the same projection (the SVG carries ``mx0``,
``my0`` and ``scale`` as data attributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fleetlink.cloud.api.geofences import Geofence
from fleetlink.cloud.api.positions import Position

WIDTH = 960
HEIGHT = 600
PADDING = 0.12  # of the span, on every side
MIN_SPAN = 0.00005  # of the world's width: about 2 km, so one vehicle is not a full screen
EARTH_CIRCUMFERENCE_M = 40_075_016.686
MAX_TILES = 48
TILE_PX = 256


def mercator(latitude: float, longitude: float) -> tuple[float, float]:
    """Return Web Mercator world coordinates in [0, 1] (x east, y south)."""
    lat = max(min(latitude, 85.0511), -85.0511)
    x = (longitude + 180.0) / 360.0
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2
    return x, y


@dataclass(frozen=True)
class Marker:
    vehicle_id: str
    name: str
    x: float
    y: float


@dataclass(frozen=True)
class FenceShape:
    name: str
    points: str = ""  # a polygon's "x,y x,y ..."
    cx: float = 0.0
    cy: float = 0.0
    r: float = 0.0


@dataclass(frozen=True)
class Tile:
    href: str
    x: float
    y: float
    size: float


@dataclass(frozen=True)
class MapView:
    width: int
    height: int
    mx0: float
    my0: float
    scale: float
    markers: list[Marker]
    fences: list[FenceShape]
    tiles: list[Tile]


def _fence_points(fence: Geofence) -> list[tuple[float, float]]:
    geometry: dict[str, Any] = fence.geometry
    if geometry.get("type") == "Polygon":
        return [mercator(lat, lon) for lon, lat, *_ in geometry["coordinates"][0]]
    lon, lat, *_ = geometry["coordinates"]
    return [mercator(lat, lon)]


def _fence_radius(fence: Geofence) -> float:
    """Return a circle's radius in world units (0 for a polygon)."""
    if fence.geometry.get("type") != "Point" or not fence.properties.radius_m:
        return 0.0
    lat = fence.geometry["coordinates"][1]
    return fence.properties.radius_m / (EARTH_CIRCUMFERENCE_M * math.cos(math.radians(lat)))


def map_view(
    positions: list[Position], fences: list[Geofence], tile_url: str | None = None
) -> MapView:
    """Return the map of ``positions`` and ``fences``, fitted with a margin into the view box."""
    points = [mercator(p.latitude, p.longitude) for p in positions]
    for fence in fences:
        r = _fence_radius(fence)
        for x, y in _fence_points(fence):
            points += [(x - r, y - r), (x + r, y + r)]
    if not points:
        points = [mercator(0.0, 0.0)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span_x = max(max(xs) - min(xs), MIN_SPAN)
    span_y = max(max(ys) - min(ys), MIN_SPAN)
    scale = min(WIDTH / (span_x * (1 + 2 * PADDING)), HEIGHT / (span_y * (1 + 2 * PADDING)))
    mx0 = (min(xs) + max(xs)) / 2 - WIDTH / 2 / scale
    my0 = (min(ys) + max(ys)) / 2 - HEIGHT / 2 / scale

    def px(x: float, y: float) -> tuple[float, float]:
        return round((x - mx0) * scale, 1), round((y - my0) * scale, 1)

    markers = [
        Marker(str(p.vehicle_id), p.name, *px(*mercator(p.latitude, p.longitude)))
        for p in positions
    ]
    shapes = []
    for fence in fences:
        corners = _fence_points(fence)
        if fence.geometry.get("type") == "Polygon":
            drawn = " ".join(f"{x},{y}" for x, y in (px(*c) for c in corners))
            shapes.append(FenceShape(fence.properties.name, points=drawn))
        else:
            cx, cy = px(*corners[0])
            r = round(_fence_radius(fence) * scale, 1)
            shapes.append(FenceShape(fence.properties.name, cx=cx, cy=cy, r=r))
    tiles = _tiles(tile_url, mx0, my0, scale) if tile_url else []
    return MapView(WIDTH, HEIGHT, mx0, my0, scale, markers, shapes, tiles)


def _tiles(url: str, mx0: float, my0: float, scale: float) -> list[Tile]:
    """Return the tiles (``{z}/{x}/{y}`` in ``url``) covering the view, at most MAX_TILES."""
    zoom = max(0, min(19, round(math.log2(scale / TILE_PX))))
    count = 2**zoom
    size = scale / count
    first_x, first_y = math.floor(mx0 * count), math.floor(my0 * count)
    last_x = math.floor((mx0 + WIDTH / scale) * count)
    last_y = math.floor((my0 + HEIGHT / scale) * count)
    tiles = []
    for ty in range(max(first_y, 0), min(last_y, count - 1) + 1):
        for tx in range(first_x, last_x + 1):
            href = url.replace("{z}", str(zoom)).replace("{x}", str(tx % count))
            tiles.append(
                Tile(
                    href.replace("{y}", str(ty)),
                    round(tx * size - mx0 * scale, 1),
                    round(ty * size - my0 * scale, 1),
                    round(size, 1),
                )
            )
    return tiles[:MAX_TILES]
