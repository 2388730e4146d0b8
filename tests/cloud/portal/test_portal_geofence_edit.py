"""Managing geofences on the live map, in a real browser: a circle typed in by keyboard is
stored as through the API's POST (audited, drawn on the map, listed, seen by the API), input
that does not fit is shown beside its field and stores nothing, a fence is deleted as through
the API's DELETE, the page passes axe with the form showing, and a viewer sees no form and
cannot post one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.cloud.conftest import member_token
from tests.cloud.portal.api_calls import api_call, csrf_token
from tests.cloud.portal.browser_checks import check_page, focus_state, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in

MAP_PATH = "/portal/map"


@pytest.fixture(scope="module")
def api_token(portal_server: PortalServer, portal_fleet: PortalFleet) -> str:
    return portal_server.call(
        lambda: member_token(portal_server.pool, portal_fleet.tenant, "admin")
    )


def _fences_named(server: PortalServer, token: str, name: str) -> list[dict[str, Any]]:
    status, collection = api_call(server, token, "GET", "/api/v1/geofences")
    assert status == 200
    return [f for f in collection["features"] if f["properties"]["name"] == name]


def _fence_set_version(server: PortalServer, token: str) -> int:
    version: int = api_call(server, token, "GET", "/api/v1/geofences")[1]["version"]
    return version


def _audit(server: PortalServer, tenant: str, action: str, fence_id: str) -> list[dict[str, Any]]:
    """Return the audit entries of ``action`` on the geofence: actor, before and after."""

    async def fetch() -> list[dict[str, Any]]:
        rows = await server.pool.fetch(
            "SELECT actor, before, after FROM audit_log WHERE tenant_id = $1 "
            "AND action = $2 AND resource = 'geofence' AND resource_id = $3 ORDER BY id",
            tenant,
            action,
            fence_id,
        )
        return [
            {
                "actor": r["actor"],
                "before": json.loads(r["before"]) if r["before"] else None,
                "after": json.loads(r["after"]) if r["after"] else None,
            }
            for r in rows
        ]

    return server.call(fetch)


def _geofence_audit_count(server: PortalServer, tenant: str) -> int:
    async def count() -> int:
        found: int = await server.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND resource = 'geofence'",
            tenant,
        )
        return found

    return server.call(count)


def test_fleet_manager_adds_a_circle_by_keyboard_and_the_api_sees_it(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet, api_token: str
) -> None:
    name = f"Depot {uuid.uuid4().hex[:4]}"
    manager = portal_fleet.members["fleet_manager"]
    version_before = _fence_set_version(portal_server, api_token)
    log_in(page, portal_server, manager, MAP_PATH)
    form = page.get_by_role("form", name="New circular geofence")
    expect(form).to_be_visible()
    check_page(page, "map-geofence-form")

    page.focus("#fence-name")
    page.keyboard.type(name)
    for value in ("52.52", "13.405", "250", "30", "120"):
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    assert focus_state(page)["id"] == "fence-dwell_s"
    tab_to(page, "Add geofence")
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text(f"The geofence {name} is added.")

    [fence] = _fences_named(portal_server, api_token, name)
    assert fence["geometry"] == {"type": "Point", "coordinates": [13.405, 52.52]}
    assert fence["properties"]["radius_m"] == 250
    assert fence["properties"]["speed_limit_kmh"] == 30
    assert fence["properties"]["dwell_s"] == 120
    assert _fence_set_version(portal_server, api_token) == version_before + 1
    [entry] = _audit(portal_server, portal_fleet.tenant, "create", fence["id"])
    assert entry["actor"] == f"{manager.email} (session)"
    assert entry["after"]["properties"]["name"] == name
    expect(page.locator(f"#geofences li[data-geofence='{fence['id']}']")).to_contain_text(
        f"{name} (circle, 250 m), speed limit 30 km/h, dwell after 120 s"
    )
    expect(page.locator("#live-map .fence-label", has_text=name)).to_have_count(1)
    assert page.locator("#live-map g.fence circle").count() >= 1
    api_call(portal_server, api_token, "DELETE", f"/api/v1/geofences/{fence['id']}")


def test_input_that_does_not_fit_shows_labelled_errors_and_stores_nothing(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet, api_token: str
) -> None:
    audits_before = _geofence_audit_count(portal_server, portal_fleet.tenant)
    version_before = _fence_set_version(portal_server, api_token)
    log_in(page, portal_server, portal_fleet.members["fleet_manager"], MAP_PATH)
    page.get_by_label("Centre latitude (-90 to 90)").fill("95")
    page.get_by_label("Centre longitude (-180 to 180)").fill("13.4")
    page.get_by_label("Radius (m)").fill("0")
    page.get_by_role("button", name="Add geofence").click()

    expect(page.locator("#fence-latitude-error")).to_have_text(
        "The latitude must be from -90 to 90."
    )
    expect(page.locator("#fence-radius_m-error")).to_contain_text("greater than 0")
    expect(page.locator("#fence-name-error")).to_contain_text("at least 1 character")
    for name in ("name", "latitude", "radius_m"):
        field = page.locator(f"#fence-{name}")
        assert field.get_attribute("aria-invalid") == "true"
        assert field.get_attribute("aria-describedby") == f"fence-{name}-error"
    assert page.locator("#fence-longitude-error").count() == 0
    # The form comes back with what was sent.
    assert page.input_value("#fence-latitude") == "95"
    assert page.input_value("#fence-longitude") == "13.4"
    check_page(page, "map-geofence-form-errors")

    page.get_by_label("Name").fill("Yard")
    page.get_by_label("Centre latitude (-90 to 90)").fill("52.5")
    page.get_by_label("Radius (m)").fill("wide")
    page.get_by_role("button", name="Add geofence").click()
    expect(page.locator("#fence-radius_m-error")).to_have_text("'wide' is not a number.")
    assert page.locator("#fence-latitude-error").count() == 0

    assert _fences_named(portal_server, api_token, "Yard") == []
    assert _fence_set_version(portal_server, api_token) == version_before
    assert _geofence_audit_count(portal_server, portal_fleet.tenant) == audits_before


def test_a_taken_name_is_refused_beside_the_name_field(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet, api_token: str
) -> None:
    name = f"Gate {uuid.uuid4().hex[:4]}"
    status, fence = api_call(
        portal_server,
        api_token,
        "POST",
        "/api/v1/geofences",
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [13.4, 52.5]},
            "properties": {"name": name, "radius_m": 100},
        },
    )
    assert status == 201, fence
    log_in(page, portal_server, portal_fleet.members["fleet_manager"], MAP_PATH)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Centre latitude (-90 to 90)").fill("52.6")
    page.get_by_label("Centre longitude (-180 to 180)").fill("13.5")
    page.get_by_label("Radius (m)").fill("80")
    page.get_by_role("button", name="Add geofence").click()
    expect(page.locator("#fence-name-error")).to_have_text("A geofence of that name exists.")
    [kept] = _fences_named(portal_server, api_token, name)
    assert kept["id"] == fence["id"] and kept["properties"]["radius_m"] == 100
    api_call(portal_server, api_token, "DELETE", f"/api/v1/geofences/{fence['id']}")


def test_fleet_manager_deletes_a_fence_by_keyboard(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet, api_token: str
) -> None:
    name = f"Old yard {uuid.uuid4().hex[:4]}"
    status, fence = api_call(
        portal_server,
        api_token,
        "POST",
        "/api/v1/geofences",
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [13.3, 52.4]},
            "properties": {"name": name, "radius_m": 300},
        },
    )
    assert status == 201, fence
    version_before = _fence_set_version(portal_server, api_token)
    manager = portal_fleet.members["fleet_manager"]
    log_in(page, portal_server, manager, MAP_PATH)
    row = page.locator(f"#geofences li[data-geofence='{fence['id']}']")
    expect(row).to_contain_text(name)
    row.get_by_role("button", name=f"Delete the geofence {name}").focus()
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text(f"The geofence {name} is deleted.")

    expect(row).to_have_count(0)
    expect(page.locator("#live-map .fence-label", has_text=name)).to_have_count(0)
    assert api_call(portal_server, api_token, "GET", f"/api/v1/geofences/{fence['id']}")[0] == 404
    assert _fence_set_version(portal_server, api_token) == version_before + 1
    [entry] = _audit(portal_server, portal_fleet.tenant, "delete", fence["id"])
    assert entry["actor"] == f"{manager.email} (session)"
    assert entry["before"]["properties"]["name"] == name


def test_a_viewer_sees_no_form_and_cannot_post_one(
    page: Page, portal_server: PortalServer, portal_fleet: PortalFleet, api_token: str
) -> None:
    name = f"Kept {uuid.uuid4().hex[:4]}"
    status, fence = api_call(
        portal_server,
        api_token,
        "POST",
        "/api/v1/geofences",
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [13.2, 52.3]},
            "properties": {"name": name, "radius_m": 150},
        },
    )
    assert status == 201, fence
    log_in(page, portal_server, portal_fleet.members["viewer"], MAP_PATH)
    expect(page.locator(f"#geofences li[data-geofence='{fence['id']}']")).to_contain_text(name)
    assert page.locator("form[action^='/portal/map/geofences']").count() == 0
    assert page.get_by_role("button", name=f"Delete the geofence {name}").count() == 0

    base = f"{portal_server.base_url}{MAP_PATH}/geofences"
    fields = {"name": "Sneaky", "latitude": "52", "longitude": "13", "radius_m": "50"}
    posted = page.request.post(base, form={"csrf_token": csrf_token(page), **fields})
    assert posted.status == 403
    assert "geofences:write" in posted.text()
    posted = page.request.post(
        f"{base}/{fence['id']}/delete", form={"csrf_token": csrf_token(page)}
    )
    assert posted.status == 403

    assert _fences_named(portal_server, api_token, "Sneaky") == []
    assert len(_fences_named(portal_server, api_token, name)) == 1
    api_call(portal_server, api_token, "DELETE", f"/api/v1/geofences/{fence['id']}")
