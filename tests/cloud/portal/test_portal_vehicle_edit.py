"""Adding a vehicle and editing its profile in the portal, through the API's own logic: the
add form on the vehicles list (VIN checked and decoded, name defaulted, audited, its webhook
queued; bad fields shown beside them with nothing stored), the profile form on a vehicle's page
(a form shown before someone else's change is refused), axe with zero violations on both pages
with the forms visible, and roles that may not change vehicles see no form and get 403."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.cloud.conftest import member_token
from tests.cloud.portal.api_calls import api_json, audit_count, csrf_token, fetch_row
from tests.cloud.portal.browser_checks import check_page, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet

VIN = "1HGCM82633A004352"  # a 2003 Honda; its 9th character is the right check digit
BAD_VIN = "1HGCM82643A004352"  # the same with a mistyped check digit


@dataclass
class EditFleet:
    """A tenant with two vehicles, a fleet manager and a viewer, an API token and a webhook
    that wants vehicle.registered."""

    portal: PortalFleet
    api_token: str

    @property
    def tenant(self) -> str:
        return self.portal.tenant

    @property
    def vehicles(self) -> list[uuid.UUID]:
        return list(self.portal.fleet.vehicles.values())


@pytest.fixture(scope="module")
def fleet(portal_server: PortalServer) -> EditFleet:
    portal = make_portal_fleet(portal_server, roles=("fleet_manager", "viewer"), devices=2)
    token = portal_server.call(lambda: member_token(portal_server.pool, portal.tenant, "admin"))
    portal_server.call(
        lambda: portal_server.pool.execute(
            "INSERT INTO webhooks (id, tenant_id, url, description, event_types, secret_enc) "
            "VALUES ($1, $2, 'https://hooks.example/vehicles', 'Registry', $3, 'sealed')",
            uuid.uuid4(),
            portal.tenant,
            ["vehicle.registered"],
        )
    )
    return EditFleet(portal, token)


def _vehicle_count(server: PortalServer, tenant: str) -> int:
    return int(fetch_row(server, "SELECT count(*) FROM vehicles WHERE tenant_id = $1", tenant)[0])


def test_fleet_manager_adds_a_vehicle_by_keyboard_and_the_api_finds_it(
    page: Page, portal_server: PortalServer, fleet: EditFleet
) -> None:
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], "/portal/vehicles")
    check_page(page, "vehicles-add-form")
    plate = f"NL-{uuid.uuid4().hex[:4]}".upper()
    page.focus("#new-plate")
    page.keyboard.type(plate.lower())
    page.keyboard.press("Tab")
    page.keyboard.type(VIN)
    page.fill("#new-tank_capacity_l", "62.5")
    page.fill("#new-odometer_km", "120400")
    page.fill("#new-tags", "night, reefer, night")
    page.select_option("#new-fuel_type", "diesel")
    page.focus("#new-tags")
    tab_to(page, "Add vehicle")
    page.keyboard.press("Enter")
    notice = page.locator("[role=status].notice")
    expect(notice).to_have_text(f"The vehicle {plate} is added.")
    listed = api_json(portal_server, fleet.api_token, "GET", "/api/v1/vehicles?limit=200")["items"]
    found = [v for v in listed if v["plate"] == plate]
    assert len(found) == 1
    vehicle = found[0]
    assert vehicle["name"] == plate  # the plate typed in lower case, normalised; name defaulted
    assert (vehicle["vin"], vehicle["make"], vehicle["year"]) == (VIN, "Honda", 2003)
    assert vehicle["fuel_type"] == "diesel" and vehicle["tank_capacity_l"] == 62.5
    assert vehicle["odometer_km"] == 120400 and vehicle["tags"] == ["night", "reefer"]
    assert audit_count(portal_server, fleet.tenant, "create", "vehicle", vehicle["id"]) == 1
    queued = fetch_row(
        portal_server,
        "SELECT payload->'data'->>'id' FROM webhook_deliveries WHERE tenant_id = $1 "
        "AND event_type = 'vehicle.registered'",
        fleet.tenant,
    )
    assert queued[0] == vehicle["id"]
    assert page.input_value("#new-plate") == ""  # the form is empty for the next one
    notice.get_by_role("link", name=plate).click()
    page.wait_for_url(f"{portal_server.base_url}/portal/vehicles/{vehicle['id']}")
    assert page.locator("h1").inner_text() == plate


def test_a_bad_vin_and_a_negative_tank_are_shown_beside_their_fields_and_nothing_is_stored(
    page: Page, portal_server: PortalServer, fleet: EditFleet
) -> None:
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], "/portal/vehicles")
    before = _vehicle_count(portal_server, fleet.tenant)
    page.fill("#new-plate", "BAD-VIN-1")
    page.fill("#new-vin", BAD_VIN)
    page.fill("#new-tank_capacity_l", "-5")
    page.get_by_role("button", name="Add vehicle").click()
    vin_error = page.locator("#new-vin-error")
    expect(vin_error).to_contain_text("Check digit (9th character) is '4'")
    assert page.get_attribute("#new-vin", "aria-describedby") == "new-vin-error"
    assert page.get_attribute("#new-vin", "aria-invalid") == "true"
    tank_error = page.locator("#new-tank_capacity_l-error").inner_text()
    assert tank_error == "Input should be greater than 0."
    assert page.locator("#new-plate-error").count() == 0
    assert page.input_value("#new-vin") == BAD_VIN and page.input_value("#new-plate") == "BAD-VIN-1"
    assert _vehicle_count(portal_server, fleet.tenant) == before
    check_page(page, "vehicles-add-error")
    # A plate another vehicle has is refused by the API's logic, also beside its field.
    taken = api_json(portal_server, fleet.api_token, "GET", f"/api/v1/vehicles/{fleet.vehicles[1]}")
    if taken["plate"] is None:
        api_json(
            portal_server,
            fleet.api_token,
            "PATCH",
            f"/api/v1/vehicles/{fleet.vehicles[1]}",
            body={"plate": "TAKEN-1"},
            headers={"If-Match": f'"{taken["version"]}"'},
        )
    page.fill("#new-plate", "taken-1")
    page.fill("#new-vin", "")
    page.fill("#new-tank_capacity_l", "")
    page.get_by_role("button", name="Add vehicle").click()
    expect(page.locator("#new-plate-error")).to_have_text(
        "Another vehicle of this tenant has this plate."
    )
    assert _vehicle_count(portal_server, fleet.tenant) == before


def test_fleet_manager_edits_a_plate_and_tags_and_the_database_has_them(
    page: Page, portal_server: PortalServer, fleet: EditFleet
) -> None:
    vehicle_id = fleet.vehicles[0]
    path = f"/portal/vehicles/{vehicle_id}"
    before = fetch_row(portal_server, "SELECT version FROM vehicles WHERE id = $1", vehicle_id)
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], path)
    check_page(page, "vehicle-edit-form")
    page.fill("#edit-plate", "ed 204 x")
    page.fill("#edit-tags", "yard, cold chain")
    page.fill("#edit-tank_capacity_l", "-1")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#edit-tank_capacity_l-error")).to_have_text(
        "Input should be greater than 0."
    )
    assert page.get_attribute("#edit-tank_capacity_l", "aria-describedby") == (
        "edit-tank_capacity_l-error"
    )
    check_page(page, "vehicle-edit-error")
    stored = fetch_row(
        portal_server, "SELECT version, plate FROM vehicles WHERE id = $1", vehicle_id
    )
    assert stored["version"] == before["version"]
    page.fill("#edit-tank_capacity_l", "80")
    page.focus("#edit-tags")
    tab_to(page, "Save profile")
    page.keyboard.press("Enter")
    notice = page.locator("[role=status].notice")
    expect(notice).to_have_text("The profile of truck 0 is saved.")
    row = fetch_row(
        portal_server,
        "SELECT plate, tags, tank_capacity_l, version FROM vehicles WHERE id = $1",
        vehicle_id,
    )
    assert row["plate"] == "ED 204 X" and list(row["tags"]) == ["yard", "cold chain"]
    assert row["tank_capacity_l"] == 80 and row["version"] == before["version"] + 1
    assert audit_count(portal_server, fleet.tenant, "update", "vehicle", str(vehicle_id)) == 1
    assert page.input_value("#edit-plate") == "ED 204 X"
    assert page.input_value("#edit-tags") == "yard, cold chain"
    # Saving the unchanged form changes nothing: no new version, no audit entry.
    with page.expect_response(f"{portal_server.base_url}{path}/profile") as answer:
        page.get_by_role("button", name="Save profile").click()
    assert answer.value.status == 200
    expect(notice).to_have_text("The profile of truck 0 is saved.")
    again = fetch_row(portal_server, "SELECT version FROM vehicles WHERE id = $1", vehicle_id)
    assert again["version"] == row["version"]
    assert audit_count(portal_server, fleet.tenant, "update", "vehicle", str(vehicle_id)) == 1


def test_a_form_shown_before_someone_elses_change_is_refused_and_changes_nothing(
    page: Page, portal_server: PortalServer, fleet: EditFleet
) -> None:
    vehicle_id = fleet.vehicles[1]
    path = f"/portal/vehicles/{vehicle_id}"
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], path)
    page.fill("#edit-plate", "STALE-1")
    current = api_json(portal_server, fleet.api_token, "GET", f"/api/v1/vehicles/{vehicle_id}")
    api_json(
        portal_server,
        fleet.api_token,
        "PATCH",
        f"/api/v1/vehicles/{vehicle_id}",
        body={"name": "renamed elsewhere"},
        headers={"If-Match": f'"{current["version"]}"'},
    )
    with page.expect_response(f"{portal_server.base_url}{path}/profile") as answer:
        page.get_by_role("button", name="Save profile").click()
    assert answer.value.status == 409
    alert = page.locator("form[aria-labelledby=edit-heading] [role=alert]")
    expect(alert).to_contain_text("Someone else changed this vehicle")
    expect(alert).to_contain_text("Reload the page")
    row = fetch_row(
        portal_server, "SELECT name, plate, version FROM vehicles WHERE id = $1", vehicle_id
    )
    assert row["name"] == "renamed elsewhere" and row["plate"] != "STALE-1"
    assert row["version"] == current["version"] + 1
    # Sent again, the stale form is still refused; after a reload it saves.
    with page.expect_response(f"{portal_server.base_url}{path}/profile") as answer:
        page.get_by_role("button", name="Save profile").click()
    assert answer.value.status == 409
    expect(alert).to_contain_text("Someone else changed this vehicle")
    assert page.input_value("#edit-plate") == "STALE-1"  # what was typed is kept
    page.goto(f"{portal_server.base_url}{path}")
    assert page.input_value("#edit-name") == "renamed elsewhere"
    page.fill("#edit-plate", "STALE-1")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("[role=status].notice")).to_have_text(
        "The profile of renamed elsewhere is saved."
    )
    row = fetch_row(portal_server, "SELECT plate FROM vehicles WHERE id = $1", vehicle_id)
    assert row["plate"] == "STALE-1"


def test_a_viewer_sees_no_vehicle_forms_and_a_forged_post_gets_403(
    page: Page, portal_server: PortalServer, fleet: EditFleet
) -> None:
    vehicle_id = fleet.vehicles[0]
    log_in(page, portal_server, fleet.portal.members["viewer"], "/portal/vehicles")
    assert page.locator("form[method=post][action='/portal/vehicles']").count() == 0
    assert page.get_by_role("button", name="Add vehicle").count() == 0
    page.goto(f"{portal_server.base_url}/portal/vehicles/{vehicle_id}")
    assert page.locator(f"form[action='/portal/vehicles/{vehicle_id}/profile']").count() == 0
    assert page.locator("#edit-heading").count() == 0
    csrf = csrf_token(page)
    before = fetch_row(
        portal_server, "SELECT plate, version FROM vehicles WHERE id = $1", vehicle_id
    )
    count = _vehicle_count(portal_server, fleet.tenant)
    for path, form in (
        ("/portal/vehicles", {"plate": "SNEAKY-1"}),
        (
            f"/portal/vehicles/{vehicle_id}/profile",
            {"plate": "SNEAKY-2", "name": "x", "status": "active", "version": "99"},
        ),
    ):
        posted = page.request.post(
            f"{portal_server.base_url}{path}", form={"csrf_token": csrf, **form}
        )
        assert posted.status == 403, path
        assert "Not allowed" in posted.text()
    after = fetch_row(
        portal_server, "SELECT plate, version FROM vehicles WHERE id = $1", vehicle_id
    )
    assert tuple(after) == tuple(before)
    assert _vehicle_count(portal_server, fleet.tenant) == count
