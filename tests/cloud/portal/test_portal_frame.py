"""The portal's frame in a real browser: login and logout, the role-filtered navigation, the
security headers, CSRF on forms, JSON twins, and the accessibility checks of each page."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pyotp
from playwright.sync_api import Page

from fleetlink.cloud.app_keys import FIELD_CIPHER
from fleetlink.cloud.auth import totp
from fleetlink.cloud.auth.permissions import Role
from fleetlink.cloud.auth.principal import Principal
from fleetlink.cloud.portal.pages import PAGES
from tests.cloud.portal.browser_checks import check_page, focus_state, tab_to
from tests.cloud.portal.conftest import (
    Member,
    PortalFleet,
    PortalServer,
    log_in,
    make_portal_fleet,
)


def test_login_page_passes_axe_and_keyboard_checks(page: Page, portal_server: PortalServer) -> None:
    page.goto(f"{portal_server.base_url}/portal/login")
    check_page(page, "login")


def test_a_page_without_session_redirects_to_login_and_back(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    page.goto(f"{portal_server.base_url}/portal/vehicles?q=truck")
    assert page.url.startswith(f"{portal_server.base_url}/portal/login?next=")
    member = portal_fleet.members["fleet_manager"]
    page.fill("#tenant", member.tenant)
    page.fill("#email", member.email)
    page.fill("#password", member.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{portal_server.base_url}/portal/vehicles?q=truck")
    assert page.locator("h1").inner_text() == "Vehicles"


def test_wrong_password_shows_an_error_and_sets_no_session(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    member = portal_fleet.members["viewer"]
    page.goto(f"{portal_server.base_url}/portal/login")
    page.fill("#tenant", member.tenant)
    page.fill("#email", member.email)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong organisation, e-mail or password."
    assert not [c for c in page.context.cookies() if c["name"] == "fl_session"]
    check_page(page, "login-refused")


def test_session_cookie_is_httponly_and_samesite_strict(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["viewer"])
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "fl_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_overview_passes_axe_and_shows_the_vehicle_count(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["fleet_manager"])
    assert page.locator(".kpi dd").first.inner_text() == "2"
    check_page(page, "overview")


def test_pages_send_a_strict_csp_and_no_store(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["viewer"])
    response = page.goto(f"{portal_server.base_url}/portal/vehicles")
    assert response is not None
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


def test_json_twin_holds_what_the_page_shows(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["viewer"])
    page.goto(f"{portal_server.base_url}/portal/vehicles?q=truck")
    names = page.locator("table.data tbody th").all_inner_texts()
    twin = page.request.get(f"{portal_server.base_url}/portal/vehicles.json?q=truck").json()
    assert (
        sorted(v["name"] for v in twin["vehicles"]["items"])
        == sorted(names)
        == [
            "truck 0",
            "truck 1",
        ]
    )
    check_page(page, "vehicles")


def test_json_twin_without_session_is_a_401_problem(portal_server: PortalServer) -> None:
    try:
        urllib.request.urlopen(f"{portal_server.base_url}/portal/vehicles.json", timeout=5)
    except urllib.error.HTTPError as refused:
        assert refused.code == 401
        assert refused.headers["Content-Type"].startswith("application/problem+json")
    else:
        raise AssertionError("the twin answered without a session")


def test_logout_form_needs_the_sessions_csrf_token(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["viewer"])
    forged = page.request.post(
        f"{portal_server.base_url}/portal/logout", form={"csrf_token": "forged"}
    )
    assert forged.status == 403
    page.goto(f"{portal_server.base_url}/portal/")
    assert page.url == f"{portal_server.base_url}/portal/"
    tab_to(page, "Log out")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_server.base_url}/portal/login")
    page.goto(f"{portal_server.base_url}/portal/")
    assert "/portal/login" in page.url


def test_keyboard_alone_logs_in_and_reaches_the_vehicles(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    member = portal_fleet.members["fleet_manager"]
    page.goto(f"{portal_server.base_url}/portal/login")
    tab_to(page, "Skip to main content")
    page.keyboard.press("Enter")
    for field, value in (("tenant", member.tenant), ("email", member.email)):
        page.keyboard.press("Tab")
        assert focus_state(page)["id"] == field
        page.keyboard.type(value)
    page.keyboard.press("Tab")
    page.keyboard.type(member.password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_server.base_url}/portal/")
    tab_to(page, "Vehicles")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_server.base_url}/portal/vehicles")


def _turn_totp_on(server: PortalServer, member: Member) -> str:
    """Turn TOTP on for ``member``; return the base32 secret their app would hold."""

    async def turn_on() -> str:
        stored, secret, _ = totp.new_secret(server.app[FIELD_CIPHER], member.user_id, member.email)
        await server.pool.execute(
            "UPDATE users SET totp_secret_enc = $2, totp_enabled = true WHERE id = $1",
            member.user_id,
            stored,
        )
        return secret

    return server.call(turn_on)


def test_totp_user_logs_in_with_password_then_code(page: Page, portal_server: PortalServer) -> None:
    fleet = make_portal_fleet(portal_server, roles=("technician",), devices=1)
    member = fleet.members["technician"]
    secret = _turn_totp_on(portal_server, member)
    page.goto(f"{portal_server.base_url}/portal/login")
    page.fill("#tenant", member.tenant)
    page.fill("#email", member.email)
    page.fill("#password", member.password)
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Enter your one-time code"
    assert not [c for c in page.context.cookies() if c["name"] == "fl_session"]
    check_page(page, "login-code")
    page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "That code does not match."
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{portal_server.base_url}/portal/")
    assert [c for c in page.context.cookies() if c["name"] == "fl_session"]


def test_navigation_lists_only_pages_the_role_may_open(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["viewer"])
    labels = page.locator("nav[aria-label=Main] a").all_inner_texts()
    viewer = Principal(
        portal_fleet.tenant, uuid.uuid4(), "v@example.org", Role.VIEWER, via="session"
    )
    assert labels == [p.nav for p in PAGES if p.nav and p.visible_to(viewer)]


def test_vehicles_facets_narrow_the_list_and_a_search_is_saved(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["fleet_manager"], "/portal/vehicles?q=truck")
    page.click("text=active (2)")
    page.wait_for_url("**/portal/vehicles?q=truck&status=active")
    assert page.locator("table.data tbody tr").count() == 2
    page.fill("#search-name", "Active trucks")
    page.click("text=Save search")
    page.wait_for_url("**/portal/vehicles?q=truck&status=active&saved=1")
    assert page.locator(".notice").inner_text() == "Search saved."
    page.goto(f"{portal_server.base_url}/portal/vehicles")
    page.click("text=Active trucks")
    page.wait_for_url("**/portal/vehicles?*status=active*")
    assert page.locator("#q").input_value() == "truck"
    assert page.locator("table.data tbody tr").count() == 2
    check_page(page, "vehicles-saved-search")


def test_keyboard_alone_walks_every_page_of_the_navigation(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet
) -> None:
    log_in(page, portal_server, portal_fleet.members["fleet_manager"])
    for label, path in (
        ("Vehicles", "/portal/vehicles"),
        ("Map", "/portal/map"),
        ("Alerts", "/portal/inbox"),
        ("Overview", "/portal/"),
    ):
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        tab_to(page, label)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{portal_server.base_url}{path}")
        assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == label
    page.goto(f"{portal_server.base_url}/portal/vehicles")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    tab_to(page, "truck 0")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/vehicles/*")
    assert page.locator("h1").inner_text() == "truck 0"
