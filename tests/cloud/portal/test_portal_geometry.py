"""The SVG geometry behind the portal's charts and map, and the CSP a tile server widens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fleetlink.cloud.api.geofences import Geofence, GeofenceOutProperties
from fleetlink.cloud.api.positions import Position
from fleetlink.cloud.portal.charts import bar_chart, nice_ceiling
from fleetlink.cloud.portal.map_view import HEIGHT, WIDTH, map_view, mercator
from fleetlink.cloud.portal.security import content_security_policy


def _position(name: str, lat: float, lon: float) -> Position:
    return Position(
        vehicle_id=uuid.uuid4(),
        name=name,
        plate=None,
        latitude=lat,
        longitude=lon,
        ts=datetime.now(UTC),
        speed_kmh=None,
    )


def _circle(name: str, lat: float, lon: float, radius_m: float) -> Geofence:
    return Geofence(
        id=uuid.uuid4(),
        geometry={"type": "Point", "coordinates": [lon, lat]},
        properties=GeofenceOutProperties(
            name=name, radius_m=radius_m, created_at=datetime.now(UTC), version=1
        ),
    )


def test_chart_scale_rounds_up_to_a_readable_maximum() -> None:
    assert [nice_ceiling(v) for v in (0, 0.07, 3, 7.5, 12, 99, 101)] == [
        1,
        0.1,
        5,
        10,
        20,
        100,
        200,
    ]
    chart = bar_chart("d", "Distance", "km", [("a", 10.0), ("b", None), ("c", 20.0)])
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.label == "c" and tallest.y + tallest.height == chart.baseline
    assert chart.bars[1].height == 0 and chart.bars[0].height == tallest.height / 2


def test_map_fits_vehicles_and_fences_inside_the_view_box() -> None:
    positions = [_position("north", 52.60, 13.40), _position("south", 52.40, 13.45)]
    fence = _circle("depot", 52.50, 13.30, 2_000)
    view = map_view(positions, [fence])
    for marker in view.markers:
        assert 0 < marker.x < WIDTH and 0 < marker.y < HEIGHT
    north, south = view.markers
    assert north.y < south.y  # north is up
    (circle,) = view.fences
    assert circle.cx - circle.r > 0 and 0 < circle.r < WIDTH
    assert view.tiles == []


def test_map_projection_matches_what_the_script_uses_to_move_markers() -> None:
    view = map_view([_position("a", 48.1, 11.5), _position("b", 48.2, 11.6)], [])
    x, y = mercator(48.1, 11.5)
    assert (round((x - view.mx0) * view.scale, 1), round((y - view.my0) * view.scale, 1)) == (
        view.markers[0].x,
        view.markers[0].y,
    )


def test_tiles_cover_the_view_and_their_origin_joins_the_csp() -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    view = map_view([_position("a", 48.1, 11.5), _position("b", 48.2, 11.6)], [], url)
    assert view.tiles and all(t.href.startswith("https://tiles.example.org/") for t in view.tiles)
    assert min(t.x for t in view.tiles) <= 0 and min(t.y for t in view.tiles) <= 0
    assert max(t.x + t.size for t in view.tiles) >= WIDTH
    assert max(t.y + t.size for t in view.tiles) >= HEIGHT
    csp = content_security_policy(url)
    assert "img-src 'self' data: https://tiles.example.org;" in csp
    assert "unsafe-inline" not in csp and "img-src 'self' data:;" in content_security_policy(None)
