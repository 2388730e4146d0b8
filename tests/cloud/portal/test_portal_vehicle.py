"""A vehicle's page in a browser: its sections, live signals that update within a second of
the device's publish, an anomaly history when anomaly events exist, and 404 for another
tenant's vehicle."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page

from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Event, EventBatch
from fleetlink.shared.signals import by_name
from fleetlink.shared.topics import Kind
from tests.cloud.conftest import mqtt_client
from tests.cloud.helpers import now_ms, telemetry, topic
from tests.cloud.portal.browser_checks import check_page
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet
from tests.waiting import wait_until

SPEED = by_name("Vehicle.Speed").id


@pytest.fixture
def device_link(mqtt_broker: Any) -> Any:
    client = mqtt_client(mqtt_broker)
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="module")
def vehicle_fleet(portal_server: PortalServer) -> PortalFleet:
    return make_portal_fleet(portal_server, roles=("fleet_manager", "viewer", "driver"), devices=1)


def _publish(client: Any, fleet: PortalFleet, kind: Kind, payload: bytes) -> None:
    device = fleet.fleet.devices[0]
    client.publish(topic(fleet.tenant, device, kind), payload, qos=1).wait_for_publish(5)


def test_vehicle_page_updates_a_live_signal_within_a_second(
    page: Page, portal_server: PortalServer, vehicle_fleet: PortalFleet, device_link: Any
) -> None:
    device = vehicle_fleet.fleet.devices[0]
    vehicle = vehicle_fleet.fleet.vehicles[device]
    _publish(
        device_link, vehicle_fleet, Kind.TELEMETRY, telemetry(device, 1, now_ms(), {SPEED: [30.0]})
    )
    path = f"/portal/vehicles/{vehicle}"
    log_in(page, portal_server, vehicle_fleet.members["fleet_manager"], path)
    twin = f"{portal_server.base_url}{path}.json"
    wait_until(lambda: bool(page.request.get(twin).json()["signals"]["signals"]))
    page.reload()
    cell = page.locator('tr[data-signal="Vehicle.Speed"] [data-field="value"]')
    assert cell.inner_text() == "30.0"
    check_page(page, "vehicle")
    page.wait_for_function("() => document.documentElement.dataset.live === 'open'")
    published_at = time.monotonic()
    _publish(
        device_link, vehicle_fleet, Kind.TELEMETRY, telemetry(device, 2, now_ms(), {SPEED: [87.0]})
    )
    page.wait_for_function(
        """() => document.querySelector('tr[data-signal="Vehicle.Speed"] [data-field="value"]')
                 .textContent === '87.0'""",
        timeout=1000,
    )
    assert time.monotonic() - published_at < 1.0


def test_anomaly_events_show_in_the_score_history(
    page: Page, portal_server: PortalServer, vehicle_fleet: PortalFleet, device_link: Any
) -> None:
    device = vehicle_fleet.fleet.devices[0]
    vehicle = vehicle_fleet.fleet.vehicles[device]
    batch = EventBatch(
        device_id=device,
        seq=10,  # events share the device's seq space with its telemetry
        events=[
            Event(
                id=uuid.uuid4(),
                time_ms=now_ms() - 1000 * n,
                type="anomaly",
                severity="warning",
                data={"signal": "Vehicle.Powertrain.CombustionEngine.ECT", "score": score},
            )
            for n, score in enumerate((0.91, 0.75))
        ],
    )
    _publish(device_link, vehicle_fleet, Kind.EVENTS, encode(batch))
    path = f"/portal/vehicles/{vehicle}"
    log_in(page, portal_server, vehicle_fleet.members["fleet_manager"], path)
    twin = f"{portal_server.base_url}{path}.json"
    wait_until(lambda: len(page.request.get(twin).json()["anomalies"]["items"]) == 2)
    page.reload()
    rows = page.locator("#anomalies + table tbody tr")
    assert rows.count() == 2
    assert rows.first.locator("td").nth(1).inner_text() == "0.91"
    assert page.locator("figure#anomaly, figure[aria-labelledby='anomaly-title']").count() == 1
    check_page(page, "vehicle-anomalies")


def test_a_driver_sees_the_profile_and_signals_only(
    page: Page, portal_server: PortalServer, vehicle_fleet: PortalFleet
) -> None:
    vehicle = vehicle_fleet.fleet.vehicles[vehicle_fleet.fleet.devices[0]]
    path = f"/portal/vehicles/{vehicle}"
    log_in(page, portal_server, vehicle_fleet.members["driver"], path)
    twin = page.request.get(f"{portal_server.base_url}{path}.json").json()
    assert twin["signals"] is not None
    for hidden in ("trips", "alerts", "dtcs", "reports", "maintenance", "anomalies", "device"):
        assert twin[hidden] is None, hidden
    assert page.locator("#trips, #alerts, #maintenance").count() == 0
    labels = page.locator("nav[aria-label=Main] a").all_inner_texts()
    assert "Alerts" not in labels


def test_another_tenants_vehicle_is_not_found(
    page: Page, portal_server: PortalServer, vehicle_fleet: PortalFleet
) -> None:
    other = make_portal_fleet(portal_server, roles=("fleet_manager",), devices=1)
    theirs = vehicle_fleet.fleet.vehicles[vehicle_fleet.fleet.devices[0]]
    log_in(page, portal_server, other.members["fleet_manager"])
    response = page.goto(f"{portal_server.base_url}/portal/vehicles/{theirs}")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    twin = page.request.get(f"{portal_server.base_url}/portal/vehicles/{theirs}.json")
    assert twin.status == 404
