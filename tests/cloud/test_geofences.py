"""Geofences: GeoJSON in and out, geometry checked, crossings computed from committed positions
into the inbox and webhooks, speed zones, and the fence set pushed to devices."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import GEOFENCE_MONITOR
from fleetlink.cloud.geofences.fences import Fence, FenceSet
from fleetlink.cloud.geofences.geometry import GeometryError, distance_m, parse_shape
from fleetlink.cloud.geofences.monitor import crossings
from fleetlink.edge.fences import FenceStore
from fleetlink.shared.codec import decode
from fleetlink.shared.messages import GeofenceSet
from fleetlink.shared.signals import by_name
from fleetlink.simulator.route import Route

from .conftest import AckListener, Fleet, bearer, ingest_settings, member_token, mqtt_client
from .helpers import SPEED, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")

LAT = by_name("Vehicle.CurrentLocation.Latitude").id
LON = by_name("Vehicle.CurrentLocation.Longitude").id
# A square around Amsterdam Centraal (lon, lat), which the simulator's default route passes.
CENTRAAL = [[4.895, 52.376], [4.905, 52.376], [4.905, 52.381], [4.895, 52.381], [4.895, 52.376]]


def _polygon(name: str, ring: list[list[float]] = CENTRAAL, **props: object) -> dict[str, object]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": name, **props},
    }


async def test_polygons_and_circles_contain_what_they_should() -> None:
    square = parse_shape({"type": "Polygon", "coordinates": [CENTRAAL]}, None)
    assert square.contains(52.378, 4.900) and not square.contains(52.370, 4.900)
    assert square.contains(52.376, 4.900)  # on the edge counts as inside
    holed = parse_shape(
        {
            "type": "Polygon",
            "coordinates": [
                [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
                [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]],
            ],
        },
        None,
    )
    assert holed.contains(2, 2) and not holed.contains(5, 5)
    circle = parse_shape({"type": "Point", "coordinates": [4.9, 52.37]}, 500.0)
    north = 52.37 + 499 / 111_195
    assert circle.contains(north, 4.9) and not circle.contains(52.37 + 502 / 111_195, 4.9)
    assert abs(distance_m(52.37, 4.9, north, 4.9) - 499) < 1


@pytest.mark.parametrize(
    ("geometry", "radius", "message"),
    [
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            None,
            "not valid",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0.5]]]},
            None,
            "ends where",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [0, 0], [0, 0], [0, 0]]]},
            None,
            "no area|not valid",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]},
            None,
            "longitude",
        ),
        ({"type": "Point", "coordinates": [4.9, 52.3]}, None, "radius_m"),
        ({"type": "Point", "coordinates": [4.9, 95.0]}, 10.0, "latitude"),
        ({"type": "LineString", "coordinates": []}, None, "Polygon"),
    ],
)
async def test_bad_geometry_is_refused_with_a_reason(
    geometry: dict[str, object], radius: float | None, message: str
) -> None:
    with pytest.raises(GeometryError, match=message):
        parse_shape(geometry, radius)


async def test_crossings_follow_positions_in_order_with_dwell_once() -> None:
    fence = Fence(
        uuid.uuid4(),
        "yard",
        parse_shape({"type": "Polygon", "coordinates": [CENTRAAL]}, None),
        None,
        60,
    )
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    inside, outside = (52.378, 4.900), (52.370, 4.900)
    points = [
        (t0 + timedelta(seconds=s), *(inside if s in (10, 20, 80, 90) else outside))
        for s in (0, 10, 20, 80, 90, 100)
    ]
    presence: dict[uuid.UUID, tuple[datetime, bool]] = {}
    found = crossings(FenceSet("t", (fence,)), presence, points)  # type: ignore[arg-type]
    assert [(c.type, (c.ts - t0).seconds) for c in found] == [
        ("geofence.enter", 10),
        ("geofence.dwell", 80),
        ("geofence.exit", 100),
    ]
    assert found[-1].inside_s == 90 and presence == {}


async def test_speed_zones_give_the_lowest_limit_where_they_overlap() -> None:
    def zone(limit: float, shape: dict[str, object], radius: float | None = None) -> Fence:
        return Fence(uuid.uuid4(), f"z{limit}", parse_shape(shape, radius), limit, None)

    zones = FenceSet(
        "t",
        (
            zone(50, {"type": "Polygon", "coordinates": [CENTRAAL]}),
            zone(30, {"type": "Point", "coordinates": [4.900, 52.378]}, 100),
        ),
    )
    assert zones.speed_limit_at(52.378, 4.900) == 30
    assert zones.speed_limit_at(52.380, 4.896) == 50
    assert zones.speed_limit_at(52.300, 4.900) is None


async def test_route_positions_through_a_fence_raise_enter_and_exit_in_the_inbox_and_webhooks(
    aiohttp_client,
    migrated_db,
    mqtt_broker,
    pool: asyncpg.Pool,
    fleet: Fleet,
    publisher,
    ack_listener: AckListener,
    tmp_path: Path,
) -> None:
    client = await aiohttp_client(create_app(ingest_settings(migrated_db, mqtt_broker.url)))
    manager = bearer(await member_token(pool, fleet.tenant, "fleet_manager"))
    device = fleet.devices[0]
    # The device has reported a position before, so it is one that gets the fences.
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO latest_signals VALUES ($1, $2, $3, now() - interval '1 day', 52.0)",
            fleet.tenant,
            fleet.vehicles[device],
            LAT,
        )
    pushed: list[GeofenceSet] = []
    got = threading.Event()
    listener = mqtt_client(mqtt_broker)
    listener.on_message = lambda *a: (pushed.append(decode(a[2].payload, GeofenceSet)), got.set())
    listener.subscribe(f"fl/v1/{fleet.tenant}/{device}/fences", qos=1)
    await asyncio.sleep(0.2)

    created = await client.post(
        "/api/v1/geofences", json=_polygon("Centraal", dwell_s=3600), headers=manager
    )
    assert created.status == 201, await created.text()
    fence = await created.json()
    assert fence["type"] == "Feature" and fence["geometry"]["coordinates"] == [CENTRAAL]
    hook = await client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/none", "event_types": ["geofence.enter"]},
        headers=manager,
    )
    assert hook.status == 201
    assert await asyncio.to_thread(got.wait, 5)
    assert pushed[-1].version == 1 and pushed[-1].fences[0].name == "Centraal"
    assert pushed[-1].fences[0].coordinates == CENTRAAL[:]
    store = FenceStore(tmp_path / "geofences.json")
    assert store.apply(pushed[-1]) and not store.apply(pushed[-1])
    assert FenceStore(tmp_path / "geofences.json").version == 1  # survives a restart
    listener.disconnect()
    listener.loop_stop()

    # Drive the simulator's route for 1.4 km from Dam: it passes Centraal and leaves it.
    route = Route()
    base = now_ms() - 600_000
    positions = [route.position_at(d) for d in range(0, 1400, 20)]
    lats = [p.latitude for p in positions]
    lons = [p.longitude for p in positions]
    for seq, start in enumerate(range(0, len(positions), 20), start=1):
        publisher.publish(
            telemetry_topic(fleet.tenant, device),
            telemetry(
                device,
                seq,
                base + start * 1000,
                {LAT: lats[start : start + 20], LON: lons[start : start + 20], SPEED: [36.0]},
            ),
            qos=1,
        )
    await ack_listener.wait_for(lambda: len(ack_listener.seqs(device)) == 4)
    await client.app[GEOFENCE_MONITOR].idle()
    listed = await client.get("/api/v1/inbox", params={"source": "geofence"}, headers=manager)
    items = (await listed.json())["items"]
    assert sorted(i["type"] for i in items) == ["geofence.enter", "geofence.exit"]
    exit_item = next(i for i in items if i["type"] == "geofence.exit")
    assert exit_item["data"]["geofence"] == "Centraal" and exit_item["data"]["inside_s"] > 0
    assert exit_item["vehicle_id"] == str(fleet.vehicles[device])
    events = await pool.fetch(
        "SELECT event_type FROM webhook_deliveries WHERE tenant_id = $1", fleet.tenant
    )
    assert [e["event_type"] for e in events] == ["geofence.enter"]

    # A late batch from before the crossing changes nothing.
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 9, base - 60_000, {LAT: [52.378], LON: [4.9]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: 9 in ack_listener.seqs(device))
    await client.app[GEOFENCE_MONITOR].idle()
    again = (await (await client.get("/api/v1/inbox", headers=manager)).json())["items"]
    assert len([i for i in again if i["source"] == "geofence"]) == 2

    limit = await client.get(
        "/api/v1/geofences/speed-limit",
        params={"latitude": 52.378, "longitude": 4.9},
        headers=manager,
    )
    assert (await limit.json()) == {"speed_limit_kmh": None}
    etag = created.headers["ETag"]
    replaced = await client.put(
        f"/api/v1/geofences/{fence['id']}",
        json=_polygon("Centraal", speed_limit_kmh=30),
        headers={**manager, "If-Match": etag},
    )
    assert replaced.status == 200, await replaced.text()
    limit = await client.get(
        "/api/v1/geofences/speed-limit",
        params={"latitude": 52.378, "longitude": 4.9},
        headers=manager,
    )
    assert (await limit.json()) == {"speed_limit_kmh": 30.0}
    collection = await (await client.get("/api/v1/geofences", headers=manager)).json()
    assert collection["type"] == "FeatureCollection" and collection["version"] == 2
    stale = await client.put(
        f"/api/v1/geofences/{fence['id']}",
        json=_polygon("X"),
        headers={**manager, "If-Match": etag},
    )
    assert stale.status == 412


async def test_geofence_writes_need_the_permission_and_bad_geometry_is_a_422(
    aiohttp_client, migrated_db, mqtt_broker, pool, fleet: Fleet
) -> None:
    client = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )
    viewer = bearer(await member_token(pool, fleet.tenant, "viewer"))
    refused = await client.post("/api/v1/geofences", json=_polygon("a"), headers=viewer)
    assert refused.status == 403
    owner = bearer(await member_token(pool, fleet.tenant, "owner"))
    bowtie = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
    bad = await client.post("/api/v1/geofences", json=_polygon("b", bowtie), headers=owner)
    assert bad.status == 422 and "Self-intersection" in (await bad.json())["detail"]
    circle = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [4.9, 52.37]},
        "properties": {"name": "depot", "radius_m": 250},
    }
    made = await client.post("/api/v1/geofences", json=circle, headers=owner)
    assert made.status == 201 and (await made.json())["properties"]["radius_m"] == 250
    twice = await client.post("/api/v1/geofences", json=circle, headers=owner)
    assert twice.status == 409
