"""Editing a webhook on the settings page, in a real browser: the URL, description and event
types change as through the API's PATCH (audited, the API sees it), a URL or event list that
does not fit is shown beside its field and changes nothing, production mode refuses a private
address, the open edit form passes axe, and a role without ``notifications:manage`` or another
tenant cannot post the form."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from fleetlink.cloud.app_keys import SETTINGS
from tests.cloud.conftest import member_token
from tests.cloud.portal.api_calls import api_call, csrf_token
from tests.cloud.portal.browser_checks import axe_violations, check_page, save_screenshot, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet

SETTINGS_PATH = "/portal/settings"


@pytest.fixture(scope="module")
def api_token(portal_server: PortalServer, portal_fleet: PortalFleet) -> str:
    return portal_server.call(
        lambda: member_token(portal_server.pool, portal_fleet.tenant, "admin")
    )


@pytest.fixture
def hook(portal_server: PortalServer, api_token: str) -> Iterator[dict[str, Any]]:
    """A webhook made through the API (deleted afterwards)."""
    status, created = api_call(
        portal_server,
        api_token,
        "POST",
        "/api/v1/webhooks",
        {
            "url": "https://hooks.example/yard",
            "description": f"Yard desk {uuid.uuid4().hex[:4]}",
            "event_types": ["geofence.enter"],
        },
    )
    assert status == 201, created
    yield created
    api_call(portal_server, api_token, "DELETE", f"/api/v1/webhooks/{created['id']}")


def _updates(server: PortalServer, tenant: str, webhook_id: str) -> list[dict[str, Any]]:
    """Return the audit entries of the webhook's updates: actor, before and after."""

    async def fetch() -> list[dict[str, Any]]:
        rows = await server.pool.fetch(
            "SELECT actor, before, after FROM audit_log WHERE tenant_id = $1 "
            "AND action = 'update' AND resource = 'webhook' AND resource_id = $2 ORDER BY id",
            tenant,
            webhook_id,
        )
        return [
            {
                "actor": r["actor"],
                "before": json.loads(r["before"]),
                "after": json.loads(r["after"]),
            }
            for r in rows
        ]

    return server.call(fetch)


def _open_edit_form(page: Page, hook: dict[str, Any]) -> Locator:
    """Open the webhook's edit form by keyboard; return it."""
    summary = page.locator("summary", has_text=f"Edit the webhook {hook['description']}")
    summary.focus()
    page.keyboard.press("Enter")
    form = page.get_by_role("form", name=f"Edit the webhook {hook['description']}")
    expect(form).to_be_visible()
    return form


def test_fleet_manager_edits_a_webhooks_url_and_events_and_the_api_sees_it(
    page: Page,
    portal_server: PortalServer,
    portal_fleet: PortalFleet,
    api_token: str,
    hook: dict[str, Any],
) -> None:
    hook_id = hook["id"]
    manager = portal_fleet.members["fleet_manager"]
    log_in(page, portal_server, manager, SETTINGS_PATH)
    form = _open_edit_form(page, hook)
    assert page.input_value(f"#edit-{hook_id}-url") == "https://hooks.example/yard"
    assert page.input_value(f"#edit-{hook_id}-description") == hook["description"]
    assert form.get_by_label("geofence.enter").is_checked()
    assert not form.get_by_label("geofence.exit").is_checked()
    # axe on the page with the form open (check_page's skip-link Tab needs a fresh page: the
    # focus now sits in the form, where the next Tab goes on from).
    save_screenshot(page, "settings-webhook-edit")
    report = axe_violations(page)
    assert not report, f"axe found violations with the edit form open:\n{report}"

    form.get_by_label("URL (https://…)").fill("https://hooks.example/yard-2")
    form.get_by_label("geofence.enter").uncheck()
    form.get_by_label("geofence.exit").check()
    form.get_by_label("geofence.dwell").check()
    page.focus(f"#edit-{hook_id}-url")
    tab_to(page, "Save webhook")
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text(
        "The webhook to https://hooks.example/yard-2 is changed."
    )
    status, seen = api_call(portal_server, api_token, "GET", f"/api/v1/webhooks/{hook_id}")
    assert status == 200
    assert seen["url"] == "https://hooks.example/yard-2"
    assert seen["event_types"] == ["geofence.dwell", "geofence.exit"]
    assert seen["description"] == hook["description"] and seen["active"] is True
    assert seen["version"] == hook["version"] + 1
    article = page.locator("article.panel", has_text=hook["description"])
    expect(article).to_contain_text("https://hooks.example/yard-2, active, events:")
    [entry] = _updates(portal_server, portal_fleet.tenant, hook_id)
    assert entry["actor"] == f"{manager.email} (session)"
    assert entry["before"]["url"] == "https://hooks.example/yard"
    assert entry["after"]["event_types"] == ["geofence.dwell", "geofence.exit"]
    # Saved again as it stands: nothing to change, so no new version and no audit entry.
    _open_edit_form(page, hook).get_by_role("button", name="Save webhook").click()
    expect(page.locator("[role=status].notice")).to_have_text(
        "The webhook to https://hooks.example/yard-2 is unchanged."
    )
    assert api_call(portal_server, api_token, "GET", f"/api/v1/webhooks/{hook_id}")[1][
        "version"
    ] == (hook["version"] + 1)
    assert len(_updates(portal_server, portal_fleet.tenant, hook_id)) == 1


def test_an_edit_that_does_not_fit_shows_errors_beside_its_fields_and_changes_nothing(
    page: Page,
    portal_server: PortalServer,
    portal_fleet: PortalFleet,
    api_token: str,
    hook: dict[str, Any],
) -> None:
    hook_id = hook["id"]
    log_in(page, portal_server, portal_fleet.members["fleet_manager"], SETTINGS_PATH)
    form = _open_edit_form(page, hook)
    form.get_by_label("URL (https://…)").fill("ftp://hooks.example/yard")
    form.get_by_label("Description (optional)").fill("Renamed")
    form.get_by_label("geofence.enter").uncheck()
    form.get_by_role("button", name="Save webhook").click()
    expect(page.locator(f"#edit-{hook_id}-events-error")).to_contain_text("at least 1 item")
    # The form comes back open with what was sent.
    form = page.get_by_role("form", name=f"Edit the webhook {hook['description']}")
    expect(form).to_be_visible()
    assert page.input_value(f"#edit-{hook_id}-url") == "ftp://hooks.example/yard"
    assert page.input_value(f"#edit-{hook_id}-description") == "Renamed"
    assert not form.get_by_label("geofence.enter").is_checked()
    assert page.locator(f"#edit-{hook_id}-url-error").count() == 0  # schema first, as the API
    assert page.locator("#webhook-events-error").count() == 0  # the new-webhook form is apart

    form.get_by_label("geofence.exit").check()
    form.get_by_role("button", name="Save webhook").click()
    error = page.locator(f"#edit-{hook_id}-url-error")
    expect(error).to_have_text("The URL must be absolute http:// or https://.")
    url_field = page.locator(f"#edit-{hook_id}-url")
    assert url_field.get_attribute("aria-describedby") == f"edit-{hook_id}-url-error"
    assert url_field.get_attribute("aria-invalid") == "true"
    assert (
        page.get_by_role("form", name=f"Edit the webhook {hook['description']}")
        .get_by_label("geofence.exit")
        .is_checked()
    )
    check_page(page, "settings-webhook-edit-error")

    status, seen = api_call(portal_server, api_token, "GET", f"/api/v1/webhooks/{hook_id}")
    assert status == 200
    assert {k: seen[k] for k in ("url", "description", "event_types", "version")} == {
        k: hook[k] for k in ("url", "description", "event_types", "version")
    }
    assert _updates(portal_server, portal_fleet.tenant, hook_id) == []


def test_production_mode_refuses_a_private_address_on_the_page_as_in_theapi_call(
    page: Page,
    portal_server: PortalServer,
    portal_fleet: PortalFleet,
    api_token: str,
    hook: dict[str, Any],
) -> None:
    hook_id = hook["id"]
    settings = portal_server.app[SETTINGS]
    log_in(page, portal_server, portal_fleet.members["fleet_manager"], SETTINGS_PATH)
    form = _open_edit_form(page, hook)
    settings.webhook_allow_private = False  # as production mode
    try:
        form.get_by_label("URL (https://…)").fill("http://127.0.0.1:9/hook")
        form.get_by_role("button", name="Save webhook").click()
        error = page.locator(f"#edit-{hook_id}-url-error")
        expect(error).to_contain_text("production mode does not call such addresses")
        status, problem = api_call(
            portal_server,
            api_token,
            "PATCH",
            f"/api/v1/webhooks/{hook_id}",
            {"url": "http://127.0.0.1:9/hook"},
        )
    finally:
        settings.webhook_allow_private = None
    assert status == 422
    assert error.inner_text() == problem["detail"][:1].upper() + problem["detail"][1:] + "."
    status, seen = api_call(portal_server, api_token, "GET", f"/api/v1/webhooks/{hook_id}")
    assert status == 200
    assert seen["url"] == "https://hooks.example/yard" and seen["version"] == hook["version"]


def test_a_viewer_or_another_tenant_cannot_post_the_edit(
    page: Page,
    portal_server: PortalServer,
    portal_fleet: PortalFleet,
    api_token: str,
    hook: dict[str, Any],
) -> None:
    edit = f"{portal_server.base_url}{SETTINGS_PATH}/webhooks/{hook['id']}/edit"
    form = {"url": "https://hooks.example/sneaky", "event_types": "*"}
    log_in(page, portal_server, portal_fleet.members["viewer"], "/portal/")
    posted = page.request.post(edit, form={"csrf_token": csrf_token(page), **form})
    assert posted.status == 403
    assert "notifications:manage" in posted.text()

    page.context.clear_cookies()
    other = make_portal_fleet(portal_server, roles=("fleet_manager",), devices=1)
    log_in(page, portal_server, other.members["fleet_manager"], "/portal/")
    posted = page.request.post(edit, form={"csrf_token": csrf_token(page), **form})
    assert posted.status == 404
    assert "Not found" in posted.text()

    status, seen = api_call(portal_server, api_token, "GET", f"/api/v1/webhooks/{hook['id']}")
    assert status == 200
    assert seen["url"] == "https://hooks.example/yard" and seen["version"] == hook["version"]
    assert _updates(portal_server, portal_fleet.tenant, hook["id"]) == []
