"""The alerts inbox in a browser: alerts from device events published through mosquitto,
acknowledged, assigned (to any member who may act) and coached by keyboard; a viewer sees them
but cannot act."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Page

from fleetlink.shared.topics import Kind
from tests.cloud.conftest import mqtt_client
from tests.cloud.helpers import events, topic
from tests.cloud.portal.browser_checks import check_page, focus_state, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def alert_fleet(portal_server: PortalServer, mqtt_broker: Any) -> PortalFleet:
    """A fleet whose first device reported two harsh-braking events (two alerts)."""
    fleet = make_portal_fleet(
        portal_server, roles=("fleet_manager", "viewer", "admin", "technician"), devices=1
    )
    device = fleet.fleet.devices[0]
    payload, _ = events(device, 1, count=2)
    client = mqtt_client(mqtt_broker)
    client.publish(topic(fleet.tenant, device, Kind.EVENTS), payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()

    async def count() -> int:
        return int(
            await portal_server.pool.fetchval(
                "SELECT count(*) FROM inbox_items WHERE tenant_id = $1", fleet.tenant
            )
        )

    wait_until(lambda: portal_server.call(count) == 2, what="two inbox items")
    return fleet


def test_manager_acknowledges_assigns_and_coaches_by_keyboard(
    page: Page, portal_server: PortalServer, alert_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, alert_fleet.members["fleet_manager"], "/portal/inbox")
    assert page.locator("li.alert").count() == 2
    check_page(page, "inbox")
    tab_to(page, "Acknowledge")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/inbox?done=acknowledge")
    assert page.locator(".notice").inner_text() == "Alert acknowledged."
    first = page.locator("li.alert").first
    assert "acknowledged" in first.locator(".facts").inner_text()
    admin, viewer = alert_fleet.members["admin"], alert_fleet.members["viewer"]
    assign = first.locator("select[name=assignee_id]")
    options = assign.locator("option").all_inner_texts()
    assert options[0] == "nobody" and options[1] == admin.email
    assert f"{alert_fleet.members['fleet_manager'].email} (you)" in options
    assert viewer.email not in options  # a viewer may not be assigned alerts
    assert alert_fleet.members["technician"].email in options  # a technician repairs
    assign.focus()
    page.keyboard.press("ArrowDown")  # nobody -> the admin
    page.keyboard.press("Tab")
    assert focus_state(page)["text"] == "Assign"
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/inbox?done=assign")
    assert page.locator("li.alert dd", has_text=admin.email).count() == 1
    item = page.locator("li.alert").first.get_attribute("id") or ""
    csrf = page.locator("form[action='/portal/logout'] input[name=csrf_token]").input_value()
    refused = page.request.post(
        f"{portal_server.base_url}/portal/inbox/{item.removeprefix('alert-')}/actions",
        form={"csrf_token": csrf, "action": "assign", "assignee_id": str(uuid.uuid4())},
    )
    assert refused.status == 422
    assert "Choose one of the members listed." in refused.text()
    assert f'aria-describedby="assignee-{item.removeprefix("alert-")}-error"' in refused.text()
    tab_to(page, "Coach the driver or comment")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert focus_state(page)["tag"] == "input"  # the "Coaching" radio, checked
    page.keyboard.press("Tab")
    page.keyboard.type("Talked about keeping distance.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/inbox?done=coach")
    assert page.locator("li.alert .facts", has_text="coached").count() == 1
    check_page(page, "inbox-after-actions")


def test_viewer_sees_alerts_without_actions_and_cannot_post_one(
    page: Page, portal_server: PortalServer, alert_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, alert_fleet.members["viewer"], "/portal/inbox")
    assert page.locator("li.alert").count() == 2
    assert page.locator("li.alert form").count() == 0
    twin = page.request.get(f"{portal_server.base_url}/portal/inbox.json").json()
    item = twin["alerts"]["items"][0]["id"]
    csrf = page.locator("form[action='/portal/logout'] input[name=csrf_token]").input_value()
    refused = page.request.post(
        f"{portal_server.base_url}/portal/inbox/{item}/actions",
        form={"csrf_token": csrf, "action": "resolve"},
    )
    assert refused.status == 403


def test_another_tenants_alert_is_not_found(
    page: Page, portal_server: PortalServer, alert_fleet: PortalFleet
) -> None:
    other = make_portal_fleet(portal_server, roles=("fleet_manager",), devices=1)
    log_in(page, portal_server, other.members["fleet_manager"], "/portal/inbox")
    assert page.locator("li.alert").count() == 0
    theirs = page.request.get(f"{portal_server.base_url}/portal/inbox.json")
    assert theirs.json()["alerts"]["items"] == []

    async def an_item() -> str:
        return str(
            await portal_server.pool.fetchval(
                "SELECT id FROM inbox_items WHERE tenant_id = $1 LIMIT 1", alert_fleet.tenant
            )
        )

    item = portal_server.call(an_item)
    csrf = page.locator("form[action='/portal/logout'] input[name=csrf_token]").input_value()
    response = page.request.post(
        f"{portal_server.base_url}/portal/inbox/{item}/actions",
        form={"csrf_token": csrf, "action": "resolve"},
    )
    assert response.status == 404
