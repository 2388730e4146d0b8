"""The drivers, leaderboard, maintenance, devices, users and settings pages in a real browser:
axe with zero violations, a screenshot each, keyboard-only use, what each role may see, CSRF
forms with errors beside their fields, another tenant's ids answered with the 404 page, and the
service worker showing a visited page offline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.cloud.conftest import member_token
from tests.cloud.portal.api_calls import api_json, audit_count, csrf_token
from tests.cloud.portal.browser_checks import check_page, focus_state, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet

ROLES = ("admin", "fleet_manager", "viewer", "installer", "technician")


@dataclass
class PagesFleet:
    """A tenant with members of ROLES, a driver, a maintenance plan and a webhook."""

    portal: PortalFleet
    driver_id: uuid.UUID
    webhook_id: uuid.UUID
    api_token: str


@pytest.fixture(scope="module")
def fleet(portal_server: PortalServer) -> PagesFleet:
    portal = make_portal_fleet(portal_server, roles=ROLES, devices=2)
    token = portal_server.call(lambda: member_token(portal_server.pool, portal.tenant, "admin"))
    driver = api_json(
        portal_server,
        token,
        "POST",
        "/api/v1/drivers",
        {"name": "Dana Driver", "employee_number": "E-17", "tags": ["night"]},
    )
    vehicle = next(iter(portal.fleet.vehicles.values()))
    api_json(
        portal_server,
        token,
        "POST",
        "/api/v1/maintenance/plans",
        {
            "name": "Oil change",
            "vehicle_id": str(vehicle),
            "interval_days": 30,
            "start_date": str(date.today() - timedelta(days=40)),
        },
    )
    webhook_id = uuid.uuid4()
    portal_server.call(
        lambda: portal_server.pool.execute(
            "INSERT INTO webhooks (id, tenant_id, url, description, event_types, secret_enc) "
            "VALUES ($1, $2, 'https://hooks.example/fleet', 'Dispatch desk', $3, 'sealed')",
            webhook_id,
            portal.tenant,
            ["webhook.test"],
        )
    )
    return PagesFleet(portal, uuid.UUID(driver["id"]), webhook_id, token)


def _login(page: Page, server: PortalServer, fleet: PagesFleet, role: str, path: str) -> None:
    log_in(page, server, fleet.portal.members[role], path)


def test_drivers_list_and_scorecard_pass_axe_and_keyboard(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "fleet_manager", "/portal/drivers")
    assert page.locator("table.data tbody th").all_inner_texts() == ["Dana Driver"]
    check_page(page, "drivers")
    tab_to(page, "Dana Driver")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_server.base_url}/portal/drivers/{fleet.driver_id}")
    assert page.locator("h1").inner_text() == "Dana Driver"
    assert page.get_by_role("heading", name="Badges", exact=False).count() == 1
    check_page(page, "driver-scorecard")
    page.fill("#from", "2026-01-01")
    page.fill("#to", "2026-01-31")
    page.get_by_role("button", name="Show").click()
    assert page.locator("#score-heading").inner_text() == "Scorecard, 2026-01-01 to 2026-01-31"


def test_leaderboard_passes_axe_and_switches_period_by_keyboard(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "viewer", "/portal/leaderboard")
    check_page(page, "leaderboard")
    page.focus("#period")
    page.keyboard.press("ArrowDown")  # week -> month
    assert page.eval_on_selector("#period", "el => el.value") == "month"
    tab_to(page, "Show")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/leaderboard?period=month*")
    assert "month" in page.locator("select#period option:checked").inner_text()


def test_maintenance_board_shows_the_overdue_plan(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "viewer", "/portal/maintenance")
    row = page.locator("section[aria-labelledby=due-heading] tbody tr").first
    assert "Oil change" in row.inner_text() and "overdue" in row.inner_text()
    assert page.locator("section[aria-labelledby=risk-heading] tbody tr").count() == 2
    check_page(page, "maintenance")
    page.focus("#status")
    page.keyboard.press("ArrowDown")  # due or overdue -> overdue
    tab_to(page, "Show")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/maintenance?status=overdue")
    assert "Oil change" in page.locator("section[aria-labelledby=due-heading] tbody").inner_text()


def test_installer_creates_and_revokes_an_enrollment_token_by_keyboard(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "installer", "/portal/devices")
    check_page(page, "devices")
    page.focus("#token-label")
    page.keyboard.type("Van 7 install")
    page.keyboard.press("Tab")
    page.keyboard.type("not hours")
    page.keyboard.press("Enter")
    error = page.locator("#token-hours-error")
    assert "valid number" in error.inner_text()
    assert page.get_attribute("#token-hours", "aria-describedby") == "token-hours-error"
    assert page.input_value("#token-label") == "Van 7 install"
    check_page(page, "devices-form-error")
    page.fill("#token-hours", "2")
    page.focus("#token-hours")
    page.keyboard.press("Enter")
    secret = page.input_value("#new-token")
    assert len(secret) > 20
    assert page.locator("#tokens tbody tr").first.inner_text().count("open") == 1
    check_page(page, "devices-token-created")
    state = tab_to(page, "Revoke")
    assert focus_state(page)["tag"] == "button", state
    page.keyboard.press("Enter")
    assert page.locator("[role=status].notice").inner_text().endswith("is revoked.")
    assert "revoked" in page.locator("#tokens tbody tr").first.inner_text()


def test_forged_token_form_is_refused(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "installer", "/portal/devices")
    forged = page.request.post(
        f"{portal_server.base_url}/portal/devices/tokens",
        form={"csrf_token": "forged", "label": "x"},
    )
    assert forged.status == 403


def test_viewer_sees_no_admin_pages_or_forms(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "viewer", "/portal/devices")
    labels = page.locator("nav[aria-label=Main] a").all_inner_texts()
    assert "Users" not in labels and "Settings" not in labels
    assert {"Drivers", "Maintenance", "Devices", "Leaderboard"} <= set(labels)
    assert page.locator("form[method=post][action^='/portal/devices']").count() == 0
    for path in ("/portal/users", "/portal/settings"):
        response = page.goto(f"{portal_server.base_url}{path}")
        assert response is not None and response.status == 403
    csrf = _csrf(page)
    technician = fleet.portal.members["technician"].user_id
    for path, form in (
        ("/portal/devices/tokens", {"label": "sneaky"}),
        ("/portal/settings/webhooks", {"url": "https://hooks.example/x", "event_types": "*"}),
        (f"/portal/settings/webhooks/{fleet.webhook_id}/delete", {}),
        ("/portal/users", {"email": "sneaky@fleet.example", "role": "admin"}),
        (f"/portal/users/{technician}/remove", {}),
    ):
        posted = page.request.post(
            f"{portal_server.base_url}{path}", form={"csrf_token": csrf, **form}
        )
        assert posted.status == 403, path


def _csrf(page: Page) -> str:
    page.goto(page.url)
    return csrf_token(page)


def test_users_page_is_for_admins_and_lists_every_role(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "admin", "/portal/users")
    roles = page.locator("table.data tbody td:nth-child(3)").all_inner_texts()
    assert {"admin", "fleet manager", "viewer", "installer"} <= set(roles)
    check_page(page, "users")
    technician = fleet.portal.members["technician"]
    select = f"#role-{technician.user_id}"
    page.select_option(select, "owner")
    page.focus(select)
    tab_to(page, "Change")
    page.keyboard.press("Enter")
    error = page.locator(f"#role-{technician.user_id}-error")
    assert error.inner_text() == "Only an owner may make or unmake an owner."
    assert page.get_attribute(select, "aria-describedby") == f"role-{technician.user_id}-error"
    check_page(page, "users-form-error")
    page.focus(select)
    page.select_option(select, "driver")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.locator("[role=status].notice").inner_text() == f"{technician.email} is now driver."


def test_admin_adds_and_removes_a_member_by_keyboard_with_errors_beside_fields(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "admin", "/portal/users")
    page.focus("#new-email")
    page.keyboard.type("not-an-address")
    tab_to(page, "Add member")
    page.keyboard.press("Enter")
    assert "e-mail address" in page.locator("#new-email-error").inner_text()
    assert page.get_attribute("#new-email", "aria-describedby") == "new-email-error"
    check_page(page, "users-add-error")
    page.fill("#new-email", fleet.portal.members["technician"].email)
    page.focus("#new-email")
    tab_to(page, "Add member")
    page.keyboard.press("Enter")
    expect(page.locator("#new-email-error")).to_contain_text("is already a member")
    email = f"night-{uuid.uuid4().hex[:6]}@fleet.example"
    page.fill("#new-email", email)
    page.fill("#new-password", "short")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("#new-password-error")).to_contain_text("at least")
    assert page.get_attribute("#new-password", "aria-describedby") == "new-password-error"
    assert page.input_value("#new-email") == email and page.input_value("#new-password") == ""
    page.fill("#new-email", "")
    page.focus("#new-email")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type("Night Dispatcher")
    page.keyboard.press("Tab")
    page.keyboard.type("a long passphrase for the night shift")
    tab_to(page, "Add member")
    page.keyboard.press("Enter")
    assert page.locator("[role=status].notice").inner_text() == f"{email} is now a member (viewer)."
    assert audit_count(portal_server, fleet.portal.tenant, "add_member", "user") == 1
    members = api_json(portal_server, fleet.api_token, "GET", "/api/v1/users?limit=200")["items"]
    assert {"email": email, "role": "viewer"}.items() <= next(
        m for m in members if m["email"] == email
    ).items()
    page.get_by_role("button", name=f"Remove {email} from this organisation").focus()
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text(f"{email} is removed.")
    assert audit_count(portal_server, fleet.portal.tenant, "remove_member", "user") == 1
    members = api_json(portal_server, fleet.api_token, "GET", "/api/v1/users?limit=200")["items"]
    assert email not in {m["email"] for m in members}


def test_fleet_manager_adds_a_webhook_by_keyboard_sees_its_secret_once_and_deletes_it(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "fleet_manager", "/portal/settings")
    new_hook_form = page.get_by_role("form", name="New webhook")
    page.get_by_role("button", name="Add webhook").click()
    assert page.locator("#webhook-events-error").count() == 1
    assert page.get_attribute("#webhook-url", "aria-describedby") == "webhook-url-error"
    assert page.locator("#rule-recipients-error").count() == 0  # the email rule form is apart
    page.fill("#webhook-url", "ftp://hooks.example/night")
    new_hook_form.get_by_label("geofence.exit").check()
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#webhook-url-error")).to_contain_text("http:// or https://")
    assert new_hook_form.get_by_label("geofence.exit").is_checked()
    check_page(page, "settings-webhook-error")
    page.fill("#webhook-url", "")
    new_hook_form.get_by_label("geofence.exit").uncheck()
    page.focus("#webhook-url")
    page.keyboard.type("https://hooks.example/night")
    page.keyboard.press("Tab")
    page.keyboard.type("Night desk")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # every event
    tab_to(page, "Add webhook")
    page.keyboard.press("Enter")
    secret = page.locator("#new-webhook-secret").input_value()
    assert len(secret) >= 32
    hooks = api_json(portal_server, fleet.api_token, "GET", "/api/v1/webhooks")["items"]
    night = next(h for h in hooks if h["description"] == "Night desk")
    assert night["url"] == "https://hooks.example/night" and night["event_types"] == ["*"]
    assert "secret" not in night
    assert audit_count(portal_server, fleet.portal.tenant, "create", "webhook") == 1
    page.goto(f"{portal_server.base_url}/portal/settings")
    assert page.locator("#new-webhook-secret").count() == 0  # shown once
    name = "Delete the webhook Night desk and its deliveries"
    page.get_by_role("button", name=name).focus()
    page.keyboard.press("Enter")
    notice = page.locator("[role=status].notice").inner_text()
    assert notice == "The webhook to https://hooks.example/night is deleted."
    assert audit_count(portal_server, fleet.portal.tenant, "delete", "webhook") == 1
    hooks = api_json(portal_server, fleet.api_token, "GET", "/api/v1/webhooks")["items"]
    assert [h["id"] for h in hooks] == [str(fleet.webhook_id)]


def test_fleet_manager_edits_scoring_and_sees_errors_beside_fields(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "fleet_manager", "/portal/settings")
    assert "Users" not in page.locator("nav[aria-label=Main] a").all_inner_texts()
    check_page(page, "settings")
    field = page.get_by_label("Harsh braking from (m/s²)")
    field.fill("99")
    field.press("Enter")
    error = page.locator("#f-detection-harsh_braking_ms2-error")
    assert "less than or equal to 20" in error.inner_text()
    assert field.get_attribute("aria-describedby") == "f-detection-harsh_braking_ms2-error"
    check_page(page, "settings-form-error")
    field = page.get_by_label("Harsh braking from (m/s²)")
    field.fill("4.5")
    field.press("Enter")
    assert "version 1" in page.locator("[role=status].notice").inner_text()
    rules = api_json(portal_server, fleet.api_token, "GET", "/api/v1/scoring/rules")
    assert rules["rules"]["detection"]["harsh_braking_ms2"] == 4.5


def test_webhook_test_delivery_and_replay_from_the_settings_page(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "admin", "/portal/settings")
    tab_to(page, "Send a test delivery")
    page.keyboard.press("Enter")
    assert page.locator("[role=status].notice").inner_text() == "A test delivery is queued."
    hook = page.locator("article.panel").first
    assert "webhook.test" in hook.locator("tbody tr").first.inner_text()
    hook.get_by_role("button", name="Replay").first.click()
    assert page.locator("[role=status].notice").inner_text() == "The delivery is queued again."
    assert "(replay)" in page.locator("article.panel tbody tr").first.inner_text()
    # Paused from the page (the API sees it), then resumed.
    # (The notice is awaited: the form posts to the same URL for both, so no URL change marks
    # the new page.)
    page.locator("article.panel").first.get_by_role("button", name="Pause").click()
    expect(page.locator("[role=status].notice")).to_contain_text("is paused.")
    expect(page.locator("article.panel").first).to_contain_text(", paused, events:")
    hook_id = fleet.webhook_id
    assert (
        api_json(portal_server, fleet.api_token, "GET", f"/api/v1/webhooks/{hook_id}")["active"]
        is False
    )
    check_page(page, "settings-webhook-paused")
    tab_to(page, "Resume")
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_contain_text("is active.")
    assert (
        api_json(portal_server, fleet.api_token, "GET", f"/api/v1/webhooks/{hook_id}")["active"]
        is True
    )


def test_email_rules_are_added_with_errors_beside_fields_and_stopped(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "fleet_manager", "/portal/settings")
    section = page.locator("section[aria-labelledby=email-heading]")
    page.fill("#rule-recipients", "dispatch@fleet.example, not-an-address")
    section.get_by_label("geofence.enter").check()
    page.get_by_role("button", name="Add email rule").click()
    assert "should match pattern" in page.locator("#rule-recipients-error").inner_text()
    assert page.get_attribute("#rule-recipients", "aria-describedby") == "rule-recipients-error"
    assert section.get_by_label("geofence.enter").is_checked()
    check_page(page, "settings-email-error")
    page.fill("#rule-recipients", "dispatch@fleet.example, yard@fleet.example")
    page.focus("#rule-severity")
    page.keyboard.press("ArrowDown")  # warning -> critical
    tab_to(page, "Add email rule")
    page.keyboard.press("Enter")
    assert page.locator("[role=status].notice").inner_text() == "The email rule is added."
    row = page.locator("section[aria-labelledby=email-heading] tbody tr").first
    assert row.inner_text().startswith("dispatch@fleet.example, yard@fleet.example")
    assert "geofence.enter" in row.inner_text() and "critical" in row.inner_text()
    row.get_by_role("button", name="Stop").click()
    assert page.locator("[role=status].notice").inner_text() == "The email rule is stopped."
    assert (
        "No email rule yet." in page.locator("section[aria-labelledby=email-heading]").inner_text()
    )


def test_another_tenants_ids_get_the_404_page(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    other = make_portal_fleet(portal_server, roles=("admin",), devices=1)
    log_in(page, portal_server, other.members["admin"], "/portal/")
    response = page.goto(f"{portal_server.base_url}/portal/drivers/{fleet.driver_id}")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    twin = page.request.get(f"{portal_server.base_url}/portal/drivers/{fleet.driver_id}.json")
    assert twin.status == 404
    csrf = _csrf(page)
    token = api_json(portal_server, fleet.api_token, "POST", "/api/v1/enrollment-tokens", {})
    technician = fleet.portal.members["technician"].user_id
    for path, form in (
        (f"/portal/settings/webhooks/{fleet.webhook_id}/test", {}),
        (f"/portal/settings/webhooks/{fleet.webhook_id}/active", {"active": "0"}),
        (f"/portal/devices/tokens/{token['id']}/revoke", {}),
        (f"/portal/users/{technician}/role", {"role": "viewer"}),
        (f"/portal/users/{technician}/remove", {}),
        (f"/portal/settings/webhooks/{fleet.webhook_id}/delete", {}),
    ):
        posted = page.request.post(
            f"{portal_server.base_url}{path}", form={"csrf_token": csrf, **form}
        )
        assert posted.status == 404, path
        assert "Not found" in posted.text()


def test_service_worker_shows_a_visited_page_offline_with_its_time(
    page: Page, portal_server: PortalServer, fleet: PagesFleet
) -> None:
    _login(page, portal_server, fleet, "viewer", "/portal/drivers")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10_000)
    page.reload()
    page.wait_for_function(
        "() => caches.match(location.href).then(Boolean)", polling=200, timeout=10_000
    )
    manifest = page.request.get(f"{portal_server.base_url}/portal/manifest.webmanifest").json()
    assert manifest["start_url"] == "/portal/" and manifest["display"] == "standalone"
    page.context.set_offline(True)
    try:
        page.reload()
        banner = page.locator(".offline-banner")
        assert banner.inner_text().startswith("Offline, showing data from 20")
        assert banner.inner_text().endswith(" UTC.")
        assert page.locator("table.data tbody th").all_inner_texts() == ["Dana Driver"]
        check_page(page, "drivers-offline")
        page.goto(f"{portal_server.base_url}/portal/users")
        assert page.locator("h1").inner_text() == "Offline"
    finally:
        page.context.set_offline(False)
