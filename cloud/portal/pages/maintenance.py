"""The maintenance board (``/portal/maintenance``): what is due, the failure risk of each
vehicle and the latest work done; roles that may change maintenance record work done for a
plan and vehicle and add plans here (through the API's own logic)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from fleetlink.cloud.api.access import principal_of
from fleetlink.cloud.api.fleets import fleet_list
from fleetlink.cloud.api.maintenance import (
    DueEntry,
    DueQuery,
    PlanCreate,
    RiskList,
    WorkRecord,
    WorkRecordCreate,
    WorkRecordQuery,
    add_plan,
    add_work_record,
    due_list,
    risk_list,
    work_records,
)
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.rest import MAX_PAGE
from fleetlink.cloud.api.vehicles import VehicleQuery, vehicle_list
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.portal.form_errors import field_errors, sentence
from fleetlink.cloud.portal.form_page import FormRefused, answer_form, posted_fields
from fleetlink.cloud.portal.form_query import form_query
from fleetlink.cloud.portal.guard import portal_guard
from fleetlink.cloud.portal.page import Page

RECENT_RECORDS = 20
PATH = "/portal/maintenance"
EVERY_PLAN = DueQuery(status="all")


class Choice(BaseModel):
    id: uuid.UUID
    name: str


class MaintenancePage(BaseModel):
    query: DueQuery
    due: list[DueEntry]
    risk: RiskList
    records: list[WorkRecord]
    may_write: bool
    work_items: list[DueEntry] = Field(
        description="Every plan and vehicle work may be recorded for (empty for roles that "
        "may not change maintenance)"
    )
    plan_vehicles: list[Choice] = Field(description="Vehicles in service a new plan may name")
    plan_fleets: list[Choice] = Field(description="Fleets a new plan may name, as paths")
    today: date


async def load(request: web.Request, conn: asyncpg.Connection) -> MaintenancePage:
    """Return the plans in the state the query string asks for (default: due or overdue),
    the vehicles' failure risk, the latest work records and, for roles that may record
    maintenance, every plan and vehicle to record work for."""
    principal = principal_of(request)
    tenant = principal.tenant_id
    query = form_query(request, DueQuery) if request.method == "GET" else DueQuery()
    records, _ = await work_records(conn, tenant, WorkRecordQuery(limit=RECENT_RECORDS))
    may_write = principal.can(Permission.MAINTENANCE_WRITE)
    fleets = (await fleet_list(conn, tenant)).items if may_write else []
    return MaintenancePage(
        query=query,
        due=await due_list(conn, tenant, query),
        risk=await risk_list(conn, tenant),
        records=records,
        may_write=may_write,
        work_items=await due_list(conn, tenant, EVERY_PLAN) if may_write else [],
        plan_vehicles=await _vehicles_in_service(conn, tenant) if may_write else [],
        plan_fleets=[Choice(id=f.id, name=" / ".join(f.path)) for f in fleets],
        today=datetime.now(UTC).date(),
    )


async def _vehicles_in_service(conn: asyncpg.Connection, tenant: str) -> list[Choice]:
    """Return every vehicle of ``tenant`` that is not retired, by name."""
    choices: list[Choice] = []
    query = VehicleQuery(limit=MAX_PAGE)
    while True:
        found = await vehicle_list(conn, tenant, query)
        choices += [Choice(id=v.id, name=v.name) for v in found.items if v.status != "retired"]
        if found.next_cursor is None:
            return choices
        query = query.model_copy(update={"cursor": found.next_cursor})


page = Page(
    name="maintenance",
    path=PATH,
    title="Maintenance board",
    permission=Permission.MAINTENANCE_READ,
    load=load,
    nav="Maintenance",
)


class MaintenanceFormError(FormRefused):
    """A maintenance form's fields that do not fit, as ``{field name: message}`` (422)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(422, errors)


_NUMBERS = ("odometer_km", "engine_hours", "labour_cost")
# The API's fields that the form sets through another field.
_FORM_FIELD = {"plan_id": "item", "vehicle_id": "item"}


def work_record_from_form(form: dict[str, str]) -> WorkRecordCreate:
    """Return the work record the form describes: ``item`` is ``<plan id>/<vehicle id>``,
    ``performed_at`` a day (YYYY-MM-DD, counted from midnight UTC), the numbers optional.

    Raises MaintenanceFormError with ``{field name: message}`` for fields that are not numbers,
    dates or a plan and vehicle, or that WorkRecordCreate refuses.
    """
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    plan, _, vehicle = form.get("item", "").partition("/")
    try:
        fields["plan_id"], fields["vehicle_id"] = uuid.UUID(plan), uuid.UUID(vehicle)
    except ValueError:
        errors["item"] = "Choose the plan and vehicle the work was for."
    day = form.get("performed_at", "").strip()
    try:
        fields["performed_at"] = datetime.combine(date.fromisoformat(day), time(), UTC)
    except ValueError:
        errors["performed_at"] = "Enter the day the work was done (YYYY-MM-DD)."
    for name in _NUMBERS:
        raw = form.get(name, "").strip()
        if not raw:
            continue
        try:
            fields[name] = float(raw)
        except ValueError:
            errors[name] = f"{raw!r} is not a number."
    if form.get("description", "").strip():
        fields["description"] = form["description"].strip()
    try:
        body = WorkRecordCreate.model_validate(fields)
    except ValidationError as exc:
        for name, message in field_errors(exc).items():
            errors.setdefault(_FORM_FIELD.get(name, name), message)
    if errors:
        raise MaintenanceFormError(errors)
    return body


async def record_work(request: web.Request) -> web.StreamResponse:
    """Store the form's work record for a plan and vehicle through the API's logic (audited;
    the plan's intervals restart from it); show the page with a notice (201), or the errors
    next to their fields with nothing stored (422)."""
    form = await posted_fields(request)
    tenant = principal_of(request).tenant_id

    async def record(conn: asyncpg.Connection) -> dict[str, Any]:
        body = work_record_from_form(form)
        entry = await _work_item(conn, tenant, body)
        try:
            await add_work_record(request, conn, body)
        except ProblemError as refused:
            raise MaintenanceFormError({"item": sentence(refused.detail)}) from None
        day = body.performed_at.date().isoformat()
        return {"notice": f"Work recorded: {entry.plan} on {entry.vehicle}, {day}."}

    return await answer_form(request, page, form, record, status=201)


async def _work_item(conn: asyncpg.Connection, tenant: str, body: WorkRecordCreate) -> DueEntry:
    """Return the due list's entry of the body's plan and vehicle; raise MaintenanceFormError
    when that plan does not apply to that vehicle (or either is not the tenant's)."""
    for entry in await due_list(conn, tenant, DueQuery(status="all", vehicle_id=body.vehicle_id)):
        if entry.plan_id == body.plan_id:
            return entry
    raise MaintenanceFormError({"item": "That plan does not apply to that vehicle."})


# The plan form's fields are named plan_<field of PlanCreate> (plan_target for the vehicle or
# fleet), apart from the work form's.
_PLAN_INTERVALS = ("interval_km", "interval_hours", "interval_days")


def plan_from_form(form: dict[str, str]) -> PlanCreate:
    """Return the plan the form describes: a name, intervals in km, engine hours and whole days
    (empty: not counted) and ``plan_target`` (empty: every vehicle; ``vehicle:<id>`` or
    ``fleet:<id>``).

    Raises MaintenanceFormError with ``{form field name: message}`` (``plan_form`` for the
    whole form) for fields that are not numbers, or that PlanCreate refuses.
    """
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {"name": form.get("plan_name", "").strip()}
    if not fields["name"]:
        errors["plan_name"] = "Give the plan a name."
    for name in _PLAN_INTERVALS:
        raw = form.get(f"plan_{name}", "").strip()
        if not raw:
            continue
        whole = name == "interval_days"
        try:
            fields[name] = int(raw) if whole else float(raw)
        except ValueError:
            errors[f"plan_{name}"] = f"{raw!r} is not {'a whole number' if whole else 'a number'}."
    if not any(f"plan_{n}" in errors or n in fields for n in _PLAN_INTERVALS):
        errors["plan_form"] = "Give at least one interval: km, engine hours or days."
    target, _, target_id = form.get("plan_target", "").partition(":")
    if target in ("vehicle", "fleet"):
        try:
            fields[f"{target}_id"] = uuid.UUID(target_id)
        except ValueError:
            errors["plan_target"] = "Choose the vehicles the plan is for."
    try:
        body = PlanCreate.model_validate(fields)
    except ValidationError as exc:
        for name, message in field_errors(exc).items():
            field = "plan_target" if name in ("vehicle_id", "fleet_id") else f"plan_{name}"
            errors.setdefault(field, message[:1].upper() + message[1:])
    if errors:
        raise MaintenanceFormError(errors)
    return body


async def create_plan(request: web.Request) -> web.StreamResponse:
    """Add the form's maintenance plan through the API's logic (audited); show the page with
    a notice (201), or the errors next to their fields with nothing stored (422)."""
    form = await posted_fields(request)

    async def create(conn: asyncpg.Connection) -> dict[str, Any]:
        body = plan_from_form(form)
        try:
            plan = await add_plan(request, conn, body)
        except ProblemError as refused:
            raise MaintenanceFormError({"plan_target": sentence(refused.detail)}) from None
        return {"notice": f"The plan {plan.name} is added."}

    return await answer_form(request, page, form, create, status=201)


routes = web.RouteTableDef()
routes.post(f"{PATH}/work-records")(portal_guard(record_work, Permission.MAINTENANCE_WRITE))
routes.post(f"{PATH}/plans")(portal_guard(create_plan, Permission.MAINTENANCE_WRITE))
