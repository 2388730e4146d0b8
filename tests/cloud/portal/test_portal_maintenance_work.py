"""Recording work done and adding a plan on the maintenance board in a real browser: the work
record is stored through the API's logic (audited) and the plan leaves the due list; a new
plan is stored the same way; a form that does not fit shows its errors beside their fields and
stores nothing; axe with the forms shown; roles that may not change maintenance see no form
and a forged post gets 403."""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.cloud.conftest import member_token
from tests.cloud.portal.api_calls import audit_count, csrf_token
from tests.cloud.portal.browser_checks import check_page, tab_to
from tests.cloud.portal.conftest import PortalFleet, PortalServer, log_in, make_portal_fleet

PATH = "/portal/maintenance"
DUE = "section[aria-labelledby=due-heading] tbody"


@dataclass
class WorkFleet:
    """A tenant with two vehicles, each with one overdue plan of its own."""

    portal: PortalFleet
    oil_plan: uuid.UUID
    oil_vehicle: uuid.UUID
    brake_plan: uuid.UUID
    brake_vehicle: uuid.UUID

    def item(self, plan: uuid.UUID, vehicle: uuid.UUID) -> str:
        return f"{plan}/{vehicle}"


def _post_plan(server: PortalServer, token: str, body: dict[str, Any]) -> uuid.UUID:
    request = urllib.request.Request(
        f"{server.base_url}/api/v1/maintenance/plans",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return uuid.UUID(json.loads(answer.read())["id"])


@pytest.fixture(scope="module")
def fleet(portal_server: PortalServer) -> WorkFleet:
    portal = make_portal_fleet(
        portal_server, roles=("fleet_manager", "technician", "viewer"), devices=2
    )
    token = portal_server.call(lambda: member_token(portal_server.pool, portal.tenant, "admin"))
    oil_vehicle, brake_vehicle = portal.fleet.vehicles.values()
    oil_plan = _post_plan(
        portal_server,
        token,
        {
            "name": "Oil change",
            "vehicle_id": str(oil_vehicle),
            "interval_days": 30,
            "start_date": str(date.today() - timedelta(days=40)),
        },
    )
    brake_plan = _post_plan(
        portal_server,
        token,
        {
            "name": "Brake check",
            "vehicle_id": str(brake_vehicle),
            "interval_days": 90,
            "start_date": str(date.today() - timedelta(days=100)),
        },
    )
    return WorkFleet(portal, oil_plan, oil_vehicle, brake_plan, brake_vehicle)


def _records(server: PortalServer, tenant: str, plan: uuid.UUID) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        rows = await server.pool.fetch(
            "SELECT vehicle_id, plan_id, performed_at, odometer_km, engine_hours, description, "
            "labour_cost::float8 AS labour_cost FROM work_records "
            "WHERE tenant_id = $1 AND plan_id = $2",
            tenant,
            plan,
        )
        return [dict(r) for r in rows]

    return server.call(fetch)


def test_fleet_manager_records_work_by_keyboard_and_the_plan_leaves_the_due_list(
    page: Page, portal_server: PortalServer, fleet: WorkFleet
) -> None:
    tenant = fleet.portal.tenant
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], PATH)
    assert "Oil change" in page.locator(DUE).inner_text()
    page.select_option("#work-item", fleet.item(fleet.oil_plan, fleet.oil_vehicle))
    assert page.input_value("#work-performed-at") == datetime.now(UTC).date().isoformat()
    page.focus("#work-odometer-km")
    page.keyboard.type("16400")
    page.keyboard.press("Tab")
    page.keyboard.type("250.5")
    page.keyboard.press("Tab")
    page.keyboard.type("80")
    page.keyboard.press("Tab")
    page.keyboard.type("oil and filter")
    tab_to(page, "Record work")
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text(
        f"Work recorded: Oil change on truck 0, {datetime.now(UTC).date().isoformat()}."
    )

    [record] = _records(portal_server, tenant, fleet.oil_plan)
    assert record["vehicle_id"] == fleet.oil_vehicle
    assert (record["odometer_km"], record["engine_hours"]) == (16400, 250.5)
    assert (record["labour_cost"], record["description"]) == (80, "oil and filter")
    assert record["performed_at"].astimezone(UTC).date() == datetime.now(UTC).date()
    assert audit_count(portal_server, tenant, "create", "work_record") == 1
    # The plan's interval restarts from the record: it is no longer due, the other still is.
    due = page.locator(DUE).inner_text()
    assert "Oil change" not in due and "Brake check" in due
    assert "oil and filter" in page.locator("section[aria-labelledby=records-heading]").inner_text()
    page.goto(f"{portal_server.base_url}{PATH}?status=ok")
    assert "Oil change" in page.locator(DUE).inner_text()


def test_an_entry_that_does_not_fit_shows_errors_beside_fields_and_stores_nothing(
    page: Page, portal_server: PortalServer, fleet: WorkFleet
) -> None:
    tenant = fleet.portal.tenant
    before = audit_count(portal_server, tenant, "create", "work_record")
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], PATH)
    page.select_option("#work-item", fleet.item(fleet.brake_plan, fleet.brake_vehicle))
    page.fill("#work-odometer-km", "-5")
    page.fill("#work-engine-hours", "lots")
    page.fill("#work-description", "pads")
    page.get_by_role("button", name="Record work").click()
    expect(page.locator("#work-odometer-km-error")).to_contain_text("greater than or equal to 0")
    assert page.locator("#work-engine-hours-error").inner_text() == "'lots' is not a number."
    assert page.get_attribute("#work-odometer-km", "aria-describedby") == "work-odometer-km-error"
    assert page.get_attribute("#work-odometer-km", "aria-invalid") == "true"
    assert page.input_value("#work-description") == "pads"
    assert page.input_value("#work-item") == fleet.item(fleet.brake_plan, fleet.brake_vehicle)
    assert page.locator("[role=status].notice").count() == 0
    check_page(page, "maintenance-work-errors")

    page.fill("#work-odometer-km", "")
    page.fill("#work-engine-hours", "")
    page.fill("#work-performed-at", "")
    page.get_by_role("button", name="Record work").click()
    expect(page.locator("#work-performed-at-error")).to_have_text(
        "Enter the day the work was done (YYYY-MM-DD)."
    )

    # A plan with a vehicle it does not apply to, as a hand-made post would send it.
    mismatched = page.request.post(
        f"{portal_server.base_url}{PATH}/work-records",
        form={
            "csrf_token": csrf_token(page),
            "item": fleet.item(fleet.oil_plan, fleet.brake_vehicle),
            "performed_at": date.today().isoformat(),
        },
    )
    assert mismatched.status == 422
    assert "That plan does not apply to that vehicle." in mismatched.text()

    assert _records(portal_server, tenant, fleet.brake_plan) == []
    assert audit_count(portal_server, tenant, "create", "work_record") == before
    page.goto(f"{portal_server.base_url}{PATH}")
    assert "Brake check" in page.locator(DUE).inner_text()


def test_technician_sees_the_form_with_no_axe_violation_and_records_work(
    page: Page, portal_server: PortalServer, fleet: WorkFleet
) -> None:
    log_in(page, portal_server, fleet.portal.members["technician"], PATH)
    expect(page.get_by_role("heading", name="Record work done")).to_be_visible()
    expect(page.get_by_role("heading", name="New plan")).to_be_visible()
    check_page(page, "maintenance-record-work")
    page.select_option("#work-item", fleet.item(fleet.brake_plan, fleet.brake_vehicle))
    page.fill("#work-performed-at", (date.today() - timedelta(days=2)).isoformat())
    page.fill("#work-odometer-km", "98000")
    page.get_by_role("button", name="Record work").click()
    expect(page.locator("[role=status].notice")).to_contain_text("Brake check on truck 1")
    [record] = _records(portal_server, fleet.portal.tenant, fleet.brake_plan)
    assert record["performed_at"] == datetime.combine(
        date.today() - timedelta(days=2), datetime.min.time(), UTC
    )
    assert "Brake check" not in page.locator(DUE).inner_text()


def _plans(server: PortalServer, tenant: str, name: str) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        rows = await server.pool.fetch(
            "SELECT id, vehicle_id, fleet_id, interval_km, interval_hours, interval_days "
            "FROM maintenance_plans WHERE tenant_id = $1 AND name = $2",
            tenant,
            name,
        )
        return [dict(r) for r in rows]

    return server.call(fetch)


def test_fleet_manager_adds_a_plan_with_errors_beside_fields_first(
    page: Page, portal_server: PortalServer, fleet: WorkFleet
) -> None:
    tenant = fleet.portal.tenant
    log_in(page, portal_server, fleet.portal.members["fleet_manager"], PATH)
    page.fill("#plan-name", "Tyre rotation")
    page.fill("#plan-interval-days", "1.5")
    page.get_by_role("button", name="Add plan").click()
    expect(page.locator("#plan-interval-days-error")).to_have_text("'1.5' is not a whole number.")
    assert page.get_attribute("#plan-interval-days", "aria-describedby") == (
        "plan-interval-days-error"
    )
    assert page.input_value("#plan-name") == "Tyre rotation"
    page.fill("#plan-interval-days", "")
    page.fill("#plan-interval-km", "-10")
    page.get_by_role("button", name="Add plan").click()
    expect(page.locator("#plan-interval-km-error")).to_contain_text("greater than 0")
    page.fill("#plan-interval-km", "")
    page.get_by_role("button", name="Add plan").click()
    expect(page.locator("#plan-heading ~ form [role=alert]")).to_have_text(
        "Give at least one interval: km, engine hours or days."
    )
    check_page(page, "maintenance-plan-errors")
    assert _plans(portal_server, tenant, "Tyre rotation") == []

    page.select_option("#plan-target", f"vehicle:{fleet.oil_vehicle}")
    page.focus("#plan-interval-km")
    page.keyboard.type("20000")
    page.keyboard.press("Tab")
    page.keyboard.type("400")
    tab_to(page, "Add plan")
    page.keyboard.press("Enter")
    expect(page.locator("[role=status].notice")).to_have_text("The plan Tyre rotation is added.")
    [plan] = _plans(portal_server, tenant, "Tyre rotation")
    assert (plan["vehicle_id"], plan["fleet_id"]) == (fleet.oil_vehicle, None)
    assert (plan["interval_km"], plan["interval_hours"], plan["interval_days"]) == (
        20000,
        400,
        None,
    )
    audited = portal_server.call(
        lambda: portal_server.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'create' "
            "AND resource = 'maintenance_plan' AND resource_id = $2",
            tenant,
            str(plan["id"]),
        )
    )
    assert audited == 1
    # Work can be recorded for it at once.
    options = page.locator("#work-item option").all_inner_texts()
    assert any(o.startswith("Tyre rotation, truck 0") for o in options)


def test_viewer_sees_no_form_and_a_forged_post_is_refused(
    page: Page, portal_server: PortalServer, fleet: WorkFleet
) -> None:
    tenant = fleet.portal.tenant
    before = audit_count(portal_server, tenant, "create", "work_record")
    log_in(page, portal_server, fleet.portal.members["viewer"], PATH)
    assert page.locator(DUE).count() == 1
    assert page.locator("form[method=post][action^='/portal/maintenance']").count() == 0
    assert page.get_by_role("heading", name="Record work done").count() == 0
    assert page.get_by_role("heading", name="New plan").count() == 0
    form = {
        "item": fleet.item(fleet.oil_plan, fleet.oil_vehicle),
        "performed_at": date.today().isoformat(),
        "odometer_km": "1",
    }
    plan_form = {"plan_name": "Sneaky", "plan_interval_days": "10"}
    for csrf in (csrf_token(page), "forged"):
        for action, fields in (("work-records", form), ("plans", plan_form)):
            posted = page.request.post(
                f"{portal_server.base_url}{PATH}/{action}", form={"csrf_token": csrf, **fields}
            )
            assert posted.status == 403, action
    assert audit_count(portal_server, tenant, "create", "work_record") == before
    assert all(r["odometer_km"] != 1 for r in _records(portal_server, tenant, fleet.oil_plan))
    assert _plans(portal_server, tenant, "Sneaky") == []
