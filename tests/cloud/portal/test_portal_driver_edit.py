"""Adding a driver, putting a driver in a vehicle and editing their profile in the portal,
through the API's own logic: the add form on the drivers list (licence number and phone stored
encrypted, audited; bad fields shown beside them with nothing stored), the assignment form on a
driver's page (the vehicle's assignment in the database, audited), the profile form there (a
form shown before someone else's change is refused), axe with zero violations on both pages with the
forms visible, and a viewer sees no form, no personal field, and gets 403 on a post."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from fleetlink.cloud.app_keys import FIELD_CIPHER
from tests.cloud.conftest import member_token
from tests.cloud.portal.api_calls import api_json, audit_count, csrf_token, fetch_row
from tests.cloud.portal.browser_checks import check_page, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet

LICENCE = "DL-4471-XB"
PHONE = "+31 6 1234 5678"


@dataclass
class DriverFleet:
    """A tenant with two vehicles, a fleet manager and a viewer, an API token and one driver
    added through the API."""

    portal: PortalFleet
    api_token: str
    driver_id: str

    @property
    def tenant(self) -> str:
        return self.portal.tenant

    @property
    def vehicles(self) -> list[uuid.UUID]:
        return list(self.portal.fleet.vehicles.values())


@pytest.fixture(scope="module")
def fleet(portal_server: PortalServer) -> DriverFleet:
    portal = make_portal_fleet(portal_server, roles=("fleet_manager", "viewer"), devices=2)
    token = portal_server.call(lambda: member_token(portal_server.pool, portal.tenant, "admin"))
    driver = api_json(
        portal_server,
        token,
        "POST",
        "/api/v1/drivers",
        body={"name": "Ada Wheeler", "employee_number": "E-1", "licence_number": "L-ADA-1"},
    )
    return DriverFleet(portal, token, driver["id"])


def _driver_count(server: PortalServer, tenant: str) -> int:
    return int(fetch_row(server, "SELECT count(*) FROM drivers WHERE tenant_id = $1", tenant)[0])


def test_fleet_manager_adds_a_driver_by_keyboard_with_personal_fields_encrypted(
    page: Page, portal_server: PortalServer, fleet: DriverFleet
) -> None:
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], "/portal/drivers")
    check_page(page, "drivers-add-form")
    name = f"Grace {uuid.uuid4().hex[:4]}"
    page.focus("#new-name")
    page.keyboard.type(name)
    for value in ("E-204", LICENCE, PHONE, "night, hazmat, night"):
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    tab_to(page, "Add driver")
    page.keyboard.press("Enter")
    notice = page.locator("[role=status].notice")
    expect(notice).to_have_text(f"The driver {name} is added.")
    row = fetch_row(
        portal_server,
        "SELECT id, employee_number, licence_number_enc, phone_enc, tags FROM drivers "
        "WHERE tenant_id = $1 AND name = $2",
        fleet.tenant,
        name,
    )
    assert row["employee_number"] == "E-204" and list(row["tags"]) == ["night", "hazmat"]
    # Stored encrypted: no plaintext in the columns, and they decrypt to what was typed.
    assert LICENCE not in row["licence_number_enc"] and PHONE not in row["phone_enc"]
    cipher = portal_server.app[FIELD_CIPHER]
    context = f"{fleet.tenant}:{row['id']}"
    assert cipher.decrypt(row["licence_number_enc"], f"drivers.licence_number:{context}") == (
        LICENCE
    )
    assert cipher.decrypt(row["phone_enc"], f"drivers.phone:{context}") == PHONE
    assert audit_count(portal_server, fleet.tenant, "create", "driver", str(row["id"])) == 1
    assert page.input_value("#new-name") == ""  # the form is empty for the next one
    notice.get_by_role("link", name=name).click()
    page.wait_for_url(f"{portal_server.base_url}/portal/drivers/{row['id']}")
    assert page.locator("h1").inner_text() == name
    expect(page.locator("dl.facts")).to_contain_text(LICENCE)


def test_bad_fields_are_shown_beside_them_and_nothing_is_stored(
    page: Page, portal_server: PortalServer, fleet: DriverFleet
) -> None:
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], "/portal/drivers")
    before = _driver_count(portal_server, fleet.tenant)
    page.fill("#new-name", "")
    page.fill("#new-phone", "call me")
    page.get_by_role("button", name="Add driver").click()
    name_error = page.locator("#new-name-error")
    expect(name_error).to_be_visible()
    assert page.get_attribute("#new-name", "aria-describedby") == "new-name-error"
    assert page.get_attribute("#new-name", "aria-invalid") == "true"
    expect(page.locator("#new-phone-error")).to_have_text(
        "Use digits, spaces and + ( ) . / - only, 3 to 32 characters."
    )
    assert page.input_value("#new-phone") == "call me"
    assert _driver_count(portal_server, fleet.tenant) == before
    check_page(page, "drivers-add-error")
    # An employee number another driver has is refused by the API's logic, beside its field.
    page.fill("#new-name", "Someone Else")
    page.fill("#new-employee_number", "E-1")
    page.fill("#new-phone", "")
    with page.expect_response(f"{portal_server.base_url}/portal/drivers") as answer:
        page.get_by_role("button", name="Add driver").click()
    assert answer.value.status == 409
    expect(page.locator("#new-employee_number-error")).to_have_text(
        "Another driver of this tenant has this employee number."
    )
    assert _driver_count(portal_server, fleet.tenant) == before


def test_fleet_manager_assigns_a_driver_to_a_vehicle_and_back_to_none(
    page: Page, portal_server: PortalServer, fleet: DriverFleet
) -> None:
    path = f"/portal/drivers/{fleet.driver_id}"
    vehicle_id = fleet.vehicles[1]
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], path)
    check_page(page, "driver-assign-form")
    expect(page.locator("#assign-vehicle_id option:checked")).to_have_text("No vehicle")
    page.select_option("#assign-vehicle_id", str(vehicle_id))
    page.focus("#assign-vehicle_id")
    tab_to(page, "Assign")
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text("Ada Wheeler is now in a vehicle.")
    current = fetch_row(
        portal_server,
        "SELECT vehicle_id FROM driver_assignments WHERE tenant_id = $1 AND driver_id = $2 "
        "AND valid_to IS NULL",
        fleet.tenant,
        uuid.UUID(fleet.driver_id),
    )
    assert current["vehicle_id"] == vehicle_id
    assert audit_count(portal_server, fleet.tenant, "assign", "driver", fleet.driver_id) == 1
    assert api_json(portal_server, fleet.api_token, "GET", f"/api/v1/drivers/{fleet.driver_id}")[
        "vehicle_id"
    ] == str(vehicle_id)
    assert page.input_value("#assign-vehicle_id") == str(vehicle_id)
    expect(page.locator("dl.facts")).to_contain_text("Vehicle now")
    check_page(page, "driver-assigned")
    # An unknown vehicle is refused beside the choice, and the assignment stays.
    csrf = csrf_token(page)
    posted = page.request.post(
        f"{portal_server.base_url}{path}/assignment",
        form={"csrf_token": csrf, "vehicle_id": str(uuid.uuid4())},
    )
    assert posted.status == 422
    assert "assign-vehicle_id-error" in posted.text()
    page.select_option("#assign-vehicle_id", "")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("[role=status].notice")).to_have_text("Ada Wheeler is now in no vehicle.")
    open_rows = fetch_row(
        portal_server,
        "SELECT count(*) FROM driver_assignments WHERE tenant_id = $1 AND driver_id = $2 "
        "AND valid_to IS NULL",
        fleet.tenant,
        uuid.UUID(fleet.driver_id),
    )
    assert open_rows[0] == 0
    assert audit_count(portal_server, fleet.tenant, "assign", "driver", fleet.driver_id) == 2


def test_fleet_manager_edits_a_profile_and_a_stale_form_is_refused(
    page: Page, portal_server: PortalServer, fleet: DriverFleet
) -> None:
    driver = api_json(
        portal_server,
        fleet.api_token,
        "POST",
        "/api/v1/drivers",
        body={"name": "Lin Okafor", "employee_number": "E-77", "phone": "+44 20 7946 0000"},
    )
    driver_id = uuid.UUID(driver["id"])
    path = f"/portal/drivers/{driver_id}"
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], path)
    check_page(page, "driver-edit-form")
    assert page.input_value("#edit-phone") == "+44 20 7946 0000"
    page.fill("#edit-phone", "nope")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#edit-phone-error")).to_have_text(
        "Use digits, spaces and + ( ) . / - only, 3 to 32 characters."
    )
    assert page.get_attribute("#edit-phone", "aria-describedby") == "edit-phone-error"
    check_page(page, "driver-edit-error")
    version = fetch_row(portal_server, "SELECT version FROM drivers WHERE id = $1", driver_id)[0]
    assert version == driver["version"]
    page.fill("#edit-phone", PHONE)
    page.fill("#edit-licence_number", LICENCE)
    page.fill("#edit-tags", "days, trainer")
    page.focus("#edit-tags")
    tab_to(page, "Save profile")
    page.keyboard.press("Enter")
    notice = page.locator("[role=status].notice")
    expect(notice).to_have_text("The profile of Lin Okafor is saved.")
    row = fetch_row(
        portal_server,
        "SELECT licence_number_enc, phone_enc, tags, version FROM drivers WHERE id = $1",
        driver_id,
    )
    assert list(row["tags"]) == ["days", "trainer"] and row["version"] == version + 1
    assert PHONE not in row["phone_enc"] and LICENCE not in row["licence_number_enc"]
    stored = api_json(portal_server, fleet.api_token, "GET", f"/api/v1/drivers/{driver_id}")
    assert (stored["phone"], stored["licence_number"]) == (PHONE, LICENCE)
    assert audit_count(portal_server, fleet.tenant, "update", "driver", str(driver_id)) == 1
    # Saving the unchanged form changes nothing: no new version, no audit entry.
    with page.expect_response(f"{portal_server.base_url}{path}/profile") as answer:
        page.get_by_role("button", name="Save profile").click()
    assert answer.value.status == 200
    expect(notice).to_have_text("The profile of Lin Okafor is saved.")
    again = api_json(portal_server, fleet.api_token, "GET", f"/api/v1/drivers/{driver_id}")
    assert again["version"] == version + 1
    assert audit_count(portal_server, fleet.tenant, "update", "driver", str(driver_id)) == 1
    # A change through the API after the form was shown makes the form stale: refused.
    api_json(
        portal_server,
        fleet.api_token,
        "PATCH",
        f"/api/v1/drivers/{driver_id}",
        body={"name": "Lin Okafor-Reyes"},
        headers={"If-Match": f'"{version + 1}"'},
    )
    page.fill("#edit-employee_number", "E-78")
    with page.expect_response(f"{portal_server.base_url}{path}/profile") as answer:
        page.get_by_role("button", name="Save profile").click()
    assert answer.value.status == 409
    alert = page.locator("form[aria-labelledby=edit-heading] [role=alert]")
    expect(alert).to_contain_text("Someone else changed this driver")
    row = fetch_row(
        portal_server, "SELECT name, employee_number FROM drivers WHERE id = $1", driver_id
    )
    assert (row["name"], row["employee_number"]) == ("Lin Okafor-Reyes", "E-77")


def test_a_viewer_sees_no_forms_nor_personal_fields_and_a_forged_post_gets_403(
    page: Page, portal_server: PortalServer, fleet: DriverFleet
) -> None:
    log_in(page, portal_server, fleet.portal.members["viewer"], "/portal/drivers")
    assert page.locator("form[method=post][action='/portal/drivers']").count() == 0
    assert page.get_by_role("button", name="Add driver").count() == 0
    path = f"/portal/drivers/{fleet.driver_id}"
    page.goto(f"{portal_server.base_url}{path}")
    assert page.locator(f"form[action='{path}/assignment']").count() == 0
    assert page.locator(f"form[action='{path}/profile']").count() == 0
    assert page.locator("#assign-heading, #edit-heading").count() == 0
    assert "L-ADA-1" not in page.content()
    assert page.get_by_text("Licence number").count() == 0
    csrf = csrf_token(page)
    count = _driver_count(portal_server, fleet.tenant)
    audited = audit_count(portal_server, fleet.tenant, "assign", "driver", fleet.driver_id)
    for target, form in (
        ("/portal/drivers", {"name": "Sneaky Driver"}),
        (f"{path}/assignment", {"vehicle_id": str(fleet.vehicles[0])}),
        (f"{path}/profile", {"name": "Renamed", "version": "1"}),
    ):
        posted = page.request.post(
            f"{portal_server.base_url}{target}", form={"csrf_token": csrf, **form}
        )
        assert posted.status == 403, target
        assert "Not allowed" in posted.text()
    assert _driver_count(portal_server, fleet.tenant) == count
    assert audit_count(portal_server, fleet.tenant, "assign", "driver", fleet.driver_id) == audited
    shown = api_json(portal_server, fleet.api_token, "GET", f"/api/v1/drivers/{fleet.driver_id}")
    assert shown["name"] == "Ada Wheeler"
