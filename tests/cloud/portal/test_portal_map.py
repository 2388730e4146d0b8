"""The live map in a browser: vehicles at their newest positions, geofences, and a marker that
moves within a second of the device's publish (real mosquitto → ingest → SSE → page)."""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import Page

from fleetlink.shared.signals import by_name
from tests.cloud.conftest import mqtt_client
from tests.cloud.helpers import now_ms, telemetry, telemetry_topic
from tests.cloud.portal.browser_checks import check_page
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet
from tests.waiting import wait_until

LAT = by_name("Vehicle.CurrentLocation.Latitude").id
LON = by_name("Vehicle.CurrentLocation.Longitude").id
SPEED = by_name("Vehicle.Speed").id


@pytest.fixture
def device_link(mqtt_broker: Any) -> Any:
    client = mqtt_client(mqtt_broker)
    yield client
    client.disconnect()
    client.loop_stop()


def publish_position(
    client: mqtt.Client, fleet: PortalFleet, device_n: int, seq: int, lat: float, lon: float
) -> None:
    """Publish one telemetry batch with a position and a speed, as the device does."""
    device = fleet.fleet.devices[device_n]
    payload = telemetry(
        device, seq, base_ms=now_ms(), values={LAT: [lat], LON: [lon], SPEED: [42.0]}
    )
    client.publish(telemetry_topic(fleet.tenant, device), payload, qos=1).wait_for_publish(5)


def test_map_shows_positions_and_moves_a_marker_within_a_second_of_the_publish(
    page: Page, portal_server: PortalServer, device_link: mqtt.Client
) -> None:
    fleet = make_portal_fleet(portal_server, roles=("viewer",), devices=2)
    publish_position(device_link, fleet, 0, 1, 52.5200, 13.4050)
    publish_position(device_link, fleet, 1, 1, 52.5300, 13.4200)
    log_in(page, portal_server, fleet.members["viewer"], "/portal/map")
    twin_url = f"{portal_server.base_url}/portal/map.json"
    wait_until(lambda: len(page.request.get(twin_url).json()["positions"]["items"]) == 2)
    page.reload()
    assert page.locator("g.marker").count() == 2
    check_page(page, "map")
    vehicle = str(fleet.fleet.vehicles[fleet.fleet.devices[0]])
    marker = page.locator(f'g.marker[data-vehicle="{vehicle}"]')
    before = marker.get_attribute("transform")
    page.wait_for_function("() => document.documentElement.dataset.live === 'open'")
    published_at = time.monotonic()
    publish_position(device_link, fleet, 0, 2, 52.5250, 13.4120)
    page.wait_for_function(
        f"""() => document.querySelector('g.marker[data-vehicle="{vehicle}"]')
                 .getAttribute('transform') !== {before!r}""",
        timeout=1000,
    )
    elapsed_s = time.monotonic() - published_at
    assert elapsed_s < 1.0
    row = page.locator(f'#positions tr[data-vehicle="{vehicle}"]')
    assert row.locator('[data-field="latitude"]').inner_text() == "52.52500"
