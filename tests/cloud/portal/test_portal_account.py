"""My account in a real browser: a member turns two-step login on by keyboard with a code
computed from the secret the page shows (audited as the API does), and from then on logging in
asks for a code; a wrong code is shown beside its labelled field and leaves it off; a member
creates an API token (shown once) that works as a bearer token until they revoke it; every role
has the page, which shows only the signed-in member's own account; each state passes axe."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.cloud.portal.browser_checks import axe_violations, check_page, tab_to
from tests.cloud.portal.conftest import (
    Member,
    PortalFleet,
    PortalServer,
    log_in,
    make_portal_fleet,
)

ACCOUNT_PATH = "/portal/account"


@pytest.fixture(scope="module")
def account_fleet(portal_server: PortalServer) -> PortalFleet:
    return make_portal_fleet(
        portal_server, roles=("fleet_manager", "viewer", "driver", "technician")
    )


def _totp_row(server: PortalServer, user_id: uuid.UUID) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        row = await server.pool.fetchrow(
            "SELECT totp_enabled, totp_secret_enc FROM users WHERE id = $1", user_id
        )
        return dict(row)

    return server.call(fetch)


def _audit_actions(server: PortalServer, member: Member) -> list[str]:
    async def fetch() -> list[str]:
        rows = await server.pool.fetch(
            "SELECT action FROM audit_log WHERE tenant_id = $1 AND resource = 'user' "
            "AND resource_id = $2 ORDER BY id",
            member.tenant,
            str(member.user_id),
        )
        return [r["action"] for r in rows]

    return server.call(fetch)


def _start_by_keyboard(page: Page) -> str:
    """Press "Turn on two-step login" by keyboard; return the secret shown, spaces removed."""
    tab_to(page, "Turn on two-step login")
    page.keyboard.press("Enter")
    secret_field = page.get_by_label("Secret", exact=True)
    expect(secret_field).to_be_visible()
    shown = secret_field.input_value()
    assert " " in shown and all(len(g) <= 4 for g in shown.split(" ")), shown
    uri = page.get_by_label("otpauth link").input_value()
    secret = shown.replace(" ", "")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    return secret


def _type_code(page: Page, code: str) -> None:
    page.get_by_label("Code from your app").focus()
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_load_state()


def test_member_turns_on_two_step_login_and_the_next_login_asks_for_a_code(
    page: Page, portal_server: PortalServer, account_fleet: PortalFleet
) -> None:
    manager = account_fleet.members["fleet_manager"]
    log_in(page, portal_server, manager, ACCOUNT_PATH)
    expect(page.locator("#totp-state")).to_contain_text("off")
    check_page(page, "account-totp-off")
    secret = _start_by_keyboard(page)
    report = axe_violations(page)
    assert not report, f"axe found violations with the secret shown:\n{report}"
    assert not _totp_row(portal_server, manager.user_id)["totp_enabled"]

    _type_code(page, pyotp.TOTP(secret).now())
    expect(page.get_by_role("status")).to_contain_text("Two-step login is on")
    expect(page.locator("#totp-state")).to_contain_text("on")
    expect(page.get_by_label("Secret", exact=True)).to_have_count(0)
    check_page(page, "account-totp-on")
    assert _totp_row(portal_server, manager.user_id)["totp_enabled"]
    assert "totp_on" in _audit_actions(portal_server, manager)

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{portal_server.base_url}/portal/login**")
    page.fill("#tenant", manager.tenant)
    page.fill("#email", manager.email)
    page.fill("#password", manager.password)
    page.click("button[type=submit]")
    code_field = page.get_by_label("One-time code")
    expect(code_field).to_be_visible()
    code_field.fill(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    page.wait_for_url(f"{portal_server.base_url}/portal/")
    page.goto(f"{portal_server.base_url}{ACCOUNT_PATH}")
    expect(page.locator("#totp-state")).to_contain_text("on")


def test_a_wrong_code_is_shown_beside_its_field_and_leaves_two_step_login_off(
    page: Page, portal_server: PortalServer, account_fleet: PortalFleet
) -> None:
    viewer = account_fleet.members["viewer"]
    log_in(page, portal_server, viewer, ACCOUNT_PATH)
    secret = _start_by_keyboard(page)
    right = pyotp.TOTP(secret).now()
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    _type_code(page, wrong)
    field = page.get_by_label("Code from your app")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#totp-code-error")).to_contain_text("does not match")
    assert field.get_attribute("aria-describedby") == "totp-code-error"
    expect(page.locator("#totp-state")).to_contain_text("off")
    report = axe_violations(page)
    assert not report, f"axe found violations with the code refused:\n{report}"
    row = _totp_row(portal_server, viewer.user_id)
    assert not row["totp_enabled"]
    assert "totp_on" not in _audit_actions(portal_server, viewer)
    # Letters are refused beside the field too, before any check of the code.
    _type_code(page, "abc")
    expect(page.locator("#totp-code-error")).to_contain_text("6 digits")
    assert not _totp_row(portal_server, viewer.user_id)["totp_enabled"]


def test_every_role_has_its_own_account_page_and_json_twin(
    page: Page, portal_server: PortalServer, account_fleet: PortalFleet
) -> None:
    driver = account_fleet.members["driver"]
    log_in(page, portal_server, driver, "/portal/")
    nav_link = page.get_by_role("link", name="My account")
    expect(nav_link).to_have_attribute("href", ACCOUNT_PATH)
    nav_link.click()
    page.wait_for_url(f"{portal_server.base_url}{ACCOUNT_PATH}")
    expect(page.get_by_text(driver.email, exact=True)).to_be_visible()
    # Drivers have no tokens:own: no token section, and its form is refused.
    expect(page.get_by_role("heading", name="API tokens")).to_have_count(0)
    twin = page.request.get(f"{portal_server.base_url}{ACCOUNT_PATH}.json")
    assert twin.status == 200
    body = json.loads(twin.text())
    assert body == {
        "email": driver.email,
        "totp": {"enabled": False, "pending": False},
        "tokens": None,
        "scopes": [],
    }
    # No other member's account is reachable by naming it.
    other = account_fleet.members["viewer"]
    assert page.request.get(f"{portal_server.base_url}{ACCOUNT_PATH}/{other.user_id}").status == 404


def _me(server: PortalServer, token: str) -> tuple[int, dict[str, Any]]:
    """GET /api/v1/auth/me with ``token`` as the bearer; return the status and the answer."""
    request = urllib.request.Request(
        f"{server.base_url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _token_actions(server: PortalServer, member: Member) -> list[str]:
    async def fetch() -> list[str]:
        rows = await server.pool.fetch(
            "SELECT action FROM audit_log WHERE tenant_id = $1 AND resource = 'token' "
            "AND actor LIKE $2 ORDER BY id",
            member.tenant,
            f"%{member.email}%",
        )
        return [r["action"] for r in rows]

    return server.call(fetch)


def test_member_creates_a_token_shown_once_that_works_until_revoked(
    page: Page, portal_server: PortalServer, account_fleet: PortalFleet
) -> None:
    technician = account_fleet.members["technician"]
    log_in(page, portal_server, technician, ACCOUNT_PATH)
    expect(page.get_by_text("No token yet.")).to_be_visible()
    check_page(page, "account-no-tokens")
    name = f"Workshop scanner {uuid.uuid4().hex[:4]}"
    page.get_by_label("Name (what it is for)").focus()
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    token_field = page.get_by_label("Token", exact=True)
    expect(token_field).to_be_visible()
    text = token_field.input_value()
    assert text.startswith("flt_")
    row = page.get_by_role("row", name=name)
    expect(row).to_contain_text("read")
    expect(row).not_to_contain_text("write")
    report = axe_violations(page)
    assert not report, f"axe found violations with the new token shown:\n{report}"

    status, me = _me(portal_server, text)
    assert status == 200, me
    assert me["email"] == technician.email and me["scopes"] == ["read"]

    page.goto(f"{portal_server.base_url}{ACCOUNT_PATH}")
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)
    assert text not in page.content()
    revoke = page.get_by_role("button", name=f"Revoke the token {name}")
    revoke.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("The token is revoked")
    expect(page.get_by_role("row", name=name)).to_contain_text("revoked")
    check_page(page, "account-token-revoked")
    status, _ = _me(portal_server, text)
    assert status == 401
    assert _token_actions(portal_server, technician) == ["create_token", "revoke_token"]


def test_a_token_without_a_scope_is_refused_beside_the_scopes(
    page: Page, portal_server: PortalServer, account_fleet: PortalFleet
) -> None:
    technician = account_fleet.members["technician"]
    log_in(page, portal_server, technician, ACCOUNT_PATH)
    before = page.get_by_role("row").count()
    page.get_by_label("Name (what it is for)").fill("No scope")
    page.get_by_label("read (only reads)").uncheck()
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-scopes-error")).to_be_visible()
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)
    assert page.get_by_role("row").count() == before
    report = axe_violations(page)
    assert not report, f"axe found violations with the scopes refused:\n{report}"
