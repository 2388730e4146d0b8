"""``/api/v1/maintenance``: service plans, the due list, work records with parts and cost, and
per vehicle its trouble-code history and failure risk; the due list and work records as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.fleets import require_fleet
from fleetlink.cloud.api.models import EARLIEST_QUERY, LATEST_QUERY
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import (
    ETAG_HEADER,
    PageQuery,
    SortKey,
    json_body,
    json_response,
    keyset,
    require_if_match,
    split_page,
)
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.maintenance.due import DueStatus
from fleetlink.cloud.maintenance.risk import HORIZONS_DAYS, packaged_model
from fleetlink.cloud.maintenance.schedule import DueItem, due_items
from fleetlink.cloud.maintenance.vehicle_risk import vehicle_risk
from fleetlink.cloud.records.device_events import EventFilter
from fleetlink.shared.event_types import ANOMALY, DTC_CLEARED, DTC_SET

api = ResourceRoutes("maintenance")
routes = api.routes

PLAN_ID = {"description": "Maintenance plan UUID", "schema": {"type": "string", "format": "uuid"}}
RECORD_ID = {"description": "Work record UUID", "schema": {"type": "string", "format": "uuid"}}
VEHICLE_ID = {"description": "Vehicle UUID", "schema": {"type": "string", "format": "uuid"}}
MAX_PLANS = 1000
MAX_RISK_VEHICLES = 500


def _in_range(value: datetime) -> datetime:
    if not EARLIEST_QUERY <= value <= LATEST_QUERY:
        raise ValueError(f"must lie between {EARLIEST_QUERY.date()} and {LATEST_QUERY.date()}")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]
# JSON numbers and booleans only: no true for 1, no "5" for 5
Number = Annotated[float, Strict()]
Whole = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]


class Deleted(BaseModel):
    deleted: bool


# Plans ------------------------------------------------------------------------------------


class _PlanFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    vehicle_id: uuid.UUID | None = Field(None, description="Only this vehicle")
    fleet_id: uuid.UUID | None = Field(None, description="The vehicles of this fleet")
    interval_km: Number | None = Field(None, gt=0, le=10_000_000)
    interval_hours: Number | None = Field(None, gt=0, le=1_000_000)
    interval_days: Whole | None = Field(None, gt=0, le=36_500)
    warn_fraction: Number | None = Field(
        None, ge=0, le=0.5, description="Due when this fraction of an interval is left"
    )
    start_odometer_km: Number | None = Field(None, ge=0, le=10_000_000)
    start_engine_hours: Number | None = Field(None, ge=0, le=1_000_000)
    start_date: date | None = Field(None, ge=date(1900, 1, 1), le=date(2100, 12, 31))
    active: Flag | None = None


class PlanCreate(_PlanFields):
    """A plan: due when the first of its intervals runs out, counted from the last work record
    that names it, else from its start values. Neither vehicle nor fleet: every vehicle."""

    name: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _shape(self) -> PlanCreate:
        if self.interval_km is None and self.interval_hours is None and self.interval_days is None:
            raise ValueError("give at least one of interval_km, interval_hours, interval_days")
        if self.vehicle_id is not None and self.fleet_id is not None:
            raise ValueError("a plan is for one vehicle or one fleet, not both")
        return self


class PlanPatch(_PlanFields):
    """Only the fields present change (send If-Match with the plan's ETag)."""


class Plan(BaseModel):
    id: uuid.UUID
    name: str
    vehicle_id: uuid.UUID | None
    fleet_id: uuid.UUID | None
    interval_km: float | None
    interval_hours: float | None
    interval_days: int | None
    warn_fraction: float
    start_odometer_km: float
    start_engine_hours: float
    start_date: date
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class PlanList(BaseModel):
    items: list[Plan]


_PLAN_COLUMNS = (
    "id, name, vehicle_id, fleet_id, interval_km, interval_hours, interval_days, warn_fraction, "
    "start_odometer_km, start_engine_hours, start_date, active, version, created_at, updated_at"
)


async def require_vehicle(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID | None, status: int = 422
) -> None:
    """Raise ProblemError (422, or ``status``) unless ``vehicle_id`` is None or the tenant's."""
    if vehicle_id is not None and not await conn.fetchval(
        "SELECT 1 FROM vehicles WHERE tenant_id = $1 AND id = $2", tenant, vehicle_id
    ):
        raise ProblemError(
            status,
            f"no vehicle {vehicle_id}",
            errors=[{"field": "vehicle_id", "message": "unknown vehicle"}],
        )


async def _plan(conn: asyncpg.Connection, tenant: str, plan_id: uuid.UUID) -> Plan:
    row = await conn.fetchrow(
        f"SELECT {_PLAN_COLUMNS} FROM maintenance_plans WHERE tenant_id = $1 AND id = $2",
        tenant,
        plan_id,
    )
    if row is None:
        raise ProblemError(404, f"no maintenance plan {plan_id}")
    return Plan.model_validate(dict(row))


def _check_violation(exc: asyncpg.CheckViolationError) -> ProblemError:
    return ProblemError(
        422,
        "the plan needs at least one interval and cannot name both a vehicle and a fleet",
        errors=[{"field": "(body)", "message": exc.constraint_name or "check failed"}],
    )


@api.get(
    "/api/v1/maintenance/plans",
    summary="Every maintenance plan",
    response=PlanList,
    permission=Permission.MAINTENANCE_READ,
)
async def list_plans(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        rows = await conn.fetch(
            f"SELECT {_PLAN_COLUMNS} FROM maintenance_plans WHERE tenant_id = $1 "
            "ORDER BY name, id LIMIT $2",
            principal_of(request).tenant_id,
            MAX_PLANS,
        )
    return json_response(PlanList(items=[Plan.model_validate(dict(r)) for r in rows]))


@api.get(
    "/api/v1/maintenance/plans/{plan_id}",
    summary="One maintenance plan",
    response=Plan,
    permission=Permission.MAINTENANCE_READ,
    path_params={"plan_id": PLAN_ID},
    errors=(400, 404),
    headers=ETAG_HEADER,
)
async def get_plan(request: web.Request) -> web.Response:
    plan_id = path_uuid(request, "plan_id")
    async with tenant_transaction(request) as conn:
        plan = await _plan(conn, principal_of(request).tenant_id, plan_id)
    return json_response(plan, version=plan.version)


@api.post(
    "/api/v1/maintenance/plans",
    summary="Add a maintenance plan",
    response=Plan,
    permission=Permission.MAINTENANCE_WRITE,
    body=PlanCreate,
    status=201,
    errors=(400, 415, 422),
    headers=ETAG_HEADER,
)
async def create_plan(request: web.Request) -> web.Response:
    body: PlanCreate = await json_body(request, PlanCreate)
    async with tenant_transaction(request) as conn:
        plan = await add_plan(request, conn, body)
    return json_response(plan, status=201, version=plan.version)


async def add_plan(request: web.Request, conn: asyncpg.Connection, body: PlanCreate) -> Plan:
    """Store ``body`` as a new plan of the caller's tenant (audited) and return it.

    Raises ProblemError(422) for a vehicle or fleet the tenant does not have (``errors``
    names ``vehicle_id`` or ``fleet_id``).
    """
    tenant = principal_of(request).tenant_id
    plan_id = uuid.uuid4()
    values = body.model_dump(exclude_none=True)
    await require_vehicle(conn, tenant, body.vehicle_id)
    await require_fleet(conn, tenant, body.fleet_id)
    columns = ["id", "tenant_id", *values]
    await conn.execute(
        f"INSERT INTO maintenance_plans ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))})",
        plan_id,
        tenant,
        *values.values(),
    )
    plan = await _plan(conn, tenant, plan_id)
    await record_change(request, conn, "create", "maintenance_plan", plan_id, after=plan)
    return plan


@api.patch(
    "/api/v1/maintenance/plans/{plan_id}",
    if_match=True,
    summary="Change a maintenance plan",
    response=Plan,
    permission=Permission.MAINTENANCE_WRITE,
    body=PlanPatch,
    path_params={"plan_id": PLAN_ID},
    errors=(400, 404, 412, 415, 422, 428),
    headers=ETAG_HEADER,
)
async def patch_plan(request: web.Request) -> web.Response:
    plan_id = path_uuid(request, "plan_id")
    body: PlanPatch = await json_body(request, PlanPatch)
    tenant = principal_of(request).tenant_id
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    required = {"name", "warn_fraction", "start_odometer_km", "start_engine_hours", "start_date"}
    for name in required | {"active"}:
        if name in changes and changes[name] is None:
            raise ProblemError(
                422, f"{name} cannot be cleared", errors=[{"field": name, "message": "null"}]
            )
    async with tenant_transaction(request) as conn:
        before = await _plan(conn, tenant, plan_id)
        require_if_match(request, before.version)
        await require_vehicle(conn, tenant, changes.get("vehicle_id"))
        await require_fleet(conn, tenant, changes.get("fleet_id"))
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            try:
                await conn.execute(
                    f"UPDATE maintenance_plans SET {sets}, version = version + 1, "
                    "updated_at = now() WHERE tenant_id = $1 AND id = $2",
                    tenant,
                    plan_id,
                    *changes.values(),
                )
            except asyncpg.CheckViolationError as exc:
                raise _check_violation(exc) from None
        after = await _plan(conn, tenant, plan_id)
        if changes:
            await record_change(
                request, conn, "update", "maintenance_plan", plan_id, before=before, after=after
            )
    return json_response(after, version=after.version)


@api.delete(
    "/api/v1/maintenance/plans/{plan_id}",
    summary="Delete a maintenance plan (its work records stay, without the plan)",
    response=Deleted,
    permission=Permission.MAINTENANCE_WRITE,
    path_params={"plan_id": PLAN_ID},
    errors=(400, 404),
)
async def delete_plan(request: web.Request) -> web.Response:
    plan_id = path_uuid(request, "plan_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        before = await _plan(conn, tenant, plan_id)
        await conn.execute(
            "DELETE FROM maintenance_plans WHERE tenant_id = $1 AND id = $2", tenant, plan_id
        )
        await record_change(request, conn, "delete", "maintenance_plan", plan_id, before=before)
    return json_response(Deleted(deleted=True))


# The due list -----------------------------------------------------------------------------


class DueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["attention", "due", "overdue", "ok", "unknown", "all"] = Field(
        "attention", description="attention: due or overdue"
    )
    vehicle_id: uuid.UUID | None = None


class DueEntry(BaseModel):
    plan_id: uuid.UUID
    plan: str
    vehicle_id: uuid.UUID
    vehicle: str
    status: DueStatus
    due_by: Literal["km", "hours", "days"] | None = Field(
        description="The interval that runs out first"
    )
    used_fraction: float | None = Field(description="Of that interval; above 1 when overdue")
    remaining_km: float | None
    remaining_hours: float | None
    remaining_days: int | None
    last_service_on: date
    odometer_km: float | None
    engine_hours: float | None
    distance_source: Literal["odometer", "speed", "none"] = Field(
        description="odometer: reported or set on the profile; speed: integrated from speed"
    )


class DueList(BaseModel):
    items: list[DueEntry] = Field(description="Most used first")


def _entry(item: DueItem) -> DueEntry:
    s = item.state
    return DueEntry(
        plan_id=item.plan_id,
        plan=item.plan_name,
        vehicle_id=item.vehicle_id,
        vehicle=item.vehicle_name,
        status=s.status,
        due_by=s.due_by,
        used_fraction=s.used_fraction,
        remaining_km=s.remaining_km,
        remaining_hours=s.remaining_hours,
        remaining_days=s.remaining_days,
        last_service_on=item.last_service.on,
        odometer_km=item.now.odometer_km,
        engine_hours=item.now.engine_hours,
        distance_source=item.distance_source,
    )


async def _due(request: web.Request, query: DueQuery) -> list[DueEntry]:
    async with tenant_transaction(request) as conn:
        return await due_list(conn, principal_of(request).tenant_id, query)


async def due_list(conn: asyncpg.Connection, tenant: str, query: DueQuery) -> list[DueEntry]:
    """Return ``tenant``'s maintenance plans per vehicle in the statuses ``query`` asks for,
    most used first."""
    wanted = {"attention": {"due", "overdue"}, "all": {"ok", "due", "overdue", "unknown"}}.get(
        query.status, {query.status}
    )
    items = await due_items(conn, tenant, datetime.now(UTC), query.vehicle_id)
    entries = [_entry(i) for i in items if i.state.status in wanted]
    return sorted(entries, key=lambda e: -(e.used_fraction or 0.0))


@api.get(
    "/api/v1/maintenance/due",
    summary="Plans due or overdue per vehicle (whichever interval runs out first)",
    response=DueList,
    permission=Permission.MAINTENANCE_READ,
    query=DueQuery,
    errors=(400,),
)
async def list_due(request: web.Request) -> web.Response:
    return json_response(DueList(items=await _due(request, query_model(request, DueQuery))))


def _csv(header: list[str], rows: list[list[Any]], filename: str) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@api.get(
    "/api/v1/maintenance/due.csv",
    summary="The due list as CSV",
    response=None,
    response_media_type="text/csv",
    permission=Permission.MAINTENANCE_READ,
    query=DueQuery,
    errors=(400,),
)
async def export_due(request: web.Request) -> web.Response:
    entries = await _due(request, query_model(request, DueQuery))
    columns = list(DueEntry.model_fields)
    rows = [[e.model_dump(mode="json")[c] for c in columns] for e in entries]
    return _csv(columns, rows, "maintenance-due.csv")


# Work records -----------------------------------------------------------------------------


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    part_number: str | None = Field(None, max_length=100)
    quantity: Number = Field(1, gt=0, le=1000)
    unit_cost: Number = Field(0, ge=0, le=100_000)


class _RecordFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: uuid.UUID | None = Field(None, description="The plan this work fulfils")
    performed_at: Moment | None = None
    odometer_km: Number | None = Field(None, ge=0, le=10_000_000)
    engine_hours: Number | None = Field(None, ge=0, le=1_000_000)
    description: str | None = Field(None, max_length=4000)
    parts: list[Part] | None = Field(None, max_length=50)
    labour_cost: Number | None = Field(None, ge=0, le=100_000_000)


class WorkRecordCreate(_RecordFields):
    """Work done on a vehicle. One that names a plan restarts that plan's intervals from its
    odometer, engine hours and date."""

    vehicle_id: uuid.UUID
    performed_at: Moment


class WorkRecordPatch(_RecordFields):
    """Only the fields present change (send If-Match with the record's ETag)."""


class WorkRecord(BaseModel):
    id: uuid.UUID
    vehicle_id: uuid.UUID
    plan_id: uuid.UUID | None
    performed_at: datetime
    odometer_km: float | None
    engine_hours: float | None
    description: str
    parts: list[Part]
    labour_cost: float
    parts_cost: float = Field(description="The sum of quantity x unit cost over the parts")
    total_cost: float
    version: int
    created_at: datetime


class WorkRecordList(BaseModel):
    items: list[WorkRecord]
    next_cursor: str | None = None


class WorkRecordQuery(PageQuery):
    vehicle_id: uuid.UUID | None = None
    plan_id: uuid.UUID | None = None


RECORD_SORTS = {"performed_at": SortKey("performed_at", "w.performed_at", "timestamptz")}
_RECORD_COLUMNS = (
    "w.id, w.vehicle_id, w.plan_id, w.performed_at, w.odometer_km, w.engine_hours, "
    "w.description, w.parts, w.labour_cost::float8 AS labour_cost, "
    "w.parts_cost::float8 AS parts_cost, w.total_cost::float8 AS total_cost, w.version, "
    "w.created_at"
)


def _parts_cost(parts: list[Part]) -> float:
    return round(sum(p.quantity * p.unit_cost for p in parts), 2)


async def _record(conn: asyncpg.Connection, tenant: str, record_id: uuid.UUID) -> WorkRecord:
    row = await conn.fetchrow(
        f"SELECT {_RECORD_COLUMNS} FROM work_records w WHERE w.tenant_id = $1 AND w.id = $2",
        tenant,
        record_id,
    )
    if row is None:
        raise ProblemError(404, f"no work record {record_id}")
    return WorkRecord.model_validate(dict(row))


async def _require_plan(conn: asyncpg.Connection, tenant: str, plan_id: uuid.UUID | None) -> None:
    if plan_id is not None and not await conn.fetchval(
        "SELECT 1 FROM maintenance_plans WHERE tenant_id = $1 AND id = $2", tenant, plan_id
    ):
        raise ProblemError(
            422, f"no plan {plan_id}", errors=[{"field": "plan_id", "message": "unknown plan"}]
        )


async def _records(
    request: web.Request, query: WorkRecordQuery
) -> tuple[list[WorkRecord], str | None]:
    async with tenant_transaction(request) as conn:
        return await work_records(conn, principal_of(request).tenant_id, query)


async def work_records(
    conn: asyncpg.Connection, tenant: str, query: WorkRecordQuery
) -> tuple[list[WorkRecord], str | None]:
    """Return the page of the tenant's work records ``query`` asks for, newest first, and the
    cursor of the next page (None on the last).

    Raises ProblemError(400) for a cursor that does not fit.
    """
    sort = "-performed_at"
    args: list[Any] = [tenant]
    conditions = ["w.tenant_id = $1"]
    for column, value in (("vehicle_id", query.vehicle_id), ("plan_id", query.plan_id)):
        if value is not None:
            args.append(value)
            conditions.append(f"w.{column} = ${len(args)}")
    after, order = keyset(RECORD_SORTS, sort, query.cursor, "w.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    rows = await conn.fetch(
        f"SELECT {_RECORD_COLUMNS} FROM work_records w WHERE {' AND '.join(conditions)} "
        f"{order} LIMIT ${len(args)}",
        *args,
    )
    page, cursor = split_page(rows, query.limit, RECORD_SORTS, sort)
    return [WorkRecord.model_validate(dict(r)) for r in page], cursor


@api.get(
    "/api/v1/maintenance/work-records",
    summary="Work records, newest first",
    response=WorkRecordList,
    permission=Permission.MAINTENANCE_READ,
    query=WorkRecordQuery,
    errors=(400,),
)
async def list_records(request: web.Request) -> web.Response:
    items, cursor = await _records(request, query_model(request, WorkRecordQuery))
    return json_response(WorkRecordList(items=items, next_cursor=cursor))


@api.get(
    "/api/v1/maintenance/work-records.csv",
    summary="Work records as CSV (one page; follow the Link header's cursor for the next)",
    response=None,
    response_media_type="text/csv",
    permission=Permission.MAINTENANCE_READ,
    query=WorkRecordQuery,
    errors=(400,),
)
async def export_records(request: web.Request) -> web.Response:
    items, cursor = await _records(request, query_model(request, WorkRecordQuery))
    columns = [c for c in WorkRecord.model_fields if c != "parts"] + ["parts"]
    rows = []
    for record in items:
        data = record.model_dump(mode="json")
        data["parts"] = "; ".join(
            f"{p['quantity']:g} x {p['name']}"
            + (f" ({p['part_number']})" if p["part_number"] else "")
            for p in data["parts"]
        )
        rows.append([data[c] for c in columns])
    response = _csv(columns, rows, "work-records.csv")
    if cursor is not None:
        response.headers["Link"] = f'<?cursor={cursor}>; rel="next"'
    return response


@api.get(
    "/api/v1/maintenance/work-records/{record_id}",
    summary="One work record",
    response=WorkRecord,
    permission=Permission.MAINTENANCE_READ,
    path_params={"record_id": RECORD_ID},
    errors=(400, 404),
    headers=ETAG_HEADER,
)
async def get_record(request: web.Request) -> web.Response:
    record_id = path_uuid(request, "record_id")
    async with tenant_transaction(request) as conn:
        record = await _record(conn, principal_of(request).tenant_id, record_id)
    return json_response(record, version=record.version)


@api.post(
    "/api/v1/maintenance/work-records",
    summary="Record work done, with parts and cost",
    response=WorkRecord,
    permission=Permission.MAINTENANCE_WRITE,
    body=WorkRecordCreate,
    status=201,
    errors=(400, 415, 422),
    headers=ETAG_HEADER,
)
async def create_record(request: web.Request) -> web.Response:
    body: WorkRecordCreate = await json_body(request, WorkRecordCreate)
    async with tenant_transaction(request) as conn:
        record = await add_work_record(request, conn, body)
    return json_response(record, status=201, version=record.version)


async def add_work_record(
    request: web.Request, conn: asyncpg.Connection, body: WorkRecordCreate
) -> WorkRecord:
    """Store ``body`` as a work record of the caller's tenant (audited) and return it; one
    that names a plan restarts that plan's intervals in the due list.

    Raises ProblemError(422) for a vehicle or plan the tenant does not have (``errors`` names
    ``vehicle_id`` or ``plan_id``).
    """
    tenant = principal_of(request).tenant_id
    record_id = uuid.uuid4()
    parts = body.parts or []
    await require_vehicle(conn, tenant, body.vehicle_id)
    await _require_plan(conn, tenant, body.plan_id)
    await conn.execute(
        """INSERT INTO work_records (id, tenant_id, vehicle_id, plan_id, performed_at,
               odometer_km, engine_hours, description, parts, labour_cost, parts_cost)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        record_id,
        tenant,
        body.vehicle_id,
        body.plan_id,
        body.performed_at,
        body.odometer_km,
        body.engine_hours,
        body.description or "",
        [p.model_dump() for p in parts],
        round(body.labour_cost or 0.0, 2),
        _parts_cost(parts),
    )
    record = await _record(conn, tenant, record_id)
    await record_change(request, conn, "create", "work_record", record_id, after=record)
    return record


@api.patch(
    "/api/v1/maintenance/work-records/{record_id}",
    if_match=True,
    summary="Correct a work record",
    response=WorkRecord,
    permission=Permission.MAINTENANCE_WRITE,
    body=WorkRecordPatch,
    path_params={"record_id": RECORD_ID},
    errors=(400, 404, 412, 415, 422, 428),
    headers=ETAG_HEADER,
)
async def patch_record(request: web.Request) -> web.Response:
    record_id = path_uuid(request, "record_id")
    body: WorkRecordPatch = await json_body(request, WorkRecordPatch)
    tenant = principal_of(request).tenant_id
    changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    for name in ("performed_at", "parts", "labour_cost", "description"):
        if name in changes and changes[name] is None:
            raise ProblemError(
                422, f"{name} cannot be cleared", errors=[{"field": name, "message": "null"}]
            )
    if "parts" in changes:
        changes["parts_cost"] = _parts_cost(changes["parts"])
        changes["parts"] = [p.model_dump() for p in changes["parts"]]
    if "labour_cost" in changes:
        changes["labour_cost"] = round(changes["labour_cost"], 2)
    async with tenant_transaction(request) as conn:
        before = await _record(conn, tenant, record_id)
        require_if_match(request, before.version)
        await _require_plan(conn, tenant, changes.get("plan_id"))
        if changes:
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
            await conn.execute(
                f"UPDATE work_records SET {sets}, version = version + 1 "
                "WHERE tenant_id = $1 AND id = $2",
                tenant,
                record_id,
                *changes.values(),
            )
        after = await _record(conn, tenant, record_id)
        if changes:
            await record_change(
                request, conn, "update", "work_record", record_id, before=before, after=after
            )
    return json_response(after, version=after.version)


@api.delete(
    "/api/v1/maintenance/work-records/{record_id}",
    summary="Delete a work record",
    response=Deleted,
    permission=Permission.MAINTENANCE_WRITE,
    path_params={"record_id": RECORD_ID},
    errors=(400, 404),
)
async def delete_record(request: web.Request) -> web.Response:
    record_id = path_uuid(request, "record_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        before = await _record(conn, tenant, record_id)
        await conn.execute(
            "DELETE FROM work_records WHERE tenant_id = $1 AND id = $2", tenant, record_id
        )
        await record_change(request, conn, "delete", "work_record", record_id, before=before)
    return json_response(Deleted(deleted=True))


# Trouble codes and risk per vehicle -------------------------------------------------------


class DtcEntry(BaseModel):
    id: uuid.UUID
    ts: datetime
    action: Literal["set", "cleared"]
    code: str | None
    description: str | None
    severity: str
    device_id: str


class DtcList(BaseModel):
    items: list[DtcEntry] = Field(description="Newest first")
    next_cursor: str | None = None


DTC_SORTS = {"ts": SortKey("ts", "e.ts", "timestamptz")}


@api.get(
    "/api/v1/vehicles/{vehicle_id}/dtcs",
    summary="The vehicle's trouble codes as they were set and cleared",
    response=DtcList,
    permission=Permission.MAINTENANCE_READ,
    query=PageQuery,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def list_dtcs(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    query = query_model(request, PageQuery)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        dtcs = await dtc_list(conn, tenant, vehicle_id, query)
    return json_response(dtcs)


async def _vehicle_events(
    conn: asyncpg.Connection,
    tenant: str,
    vehicle_id: uuid.UUID,
    types: list[str],
    query: PageQuery,
    fields: str,
) -> tuple[Sequence[Mapping[str, Any]], str | None]:
    """Return a page of the vehicle's events of ``types``, newest first, and the next cursor;
    raise ProblemError(404) for a vehicle the tenant does not have."""
    args: list[Any] = []
    where = EventFilter(tenant, vehicle_id, types=types).where(args)
    after, order = keyset(DTC_SORTS, "-ts", query.cursor, "e.id", args)
    args.append(query.limit + 1)
    await require_vehicle(conn, tenant, vehicle_id, status=404)
    rows = await conn.fetch(
        f"""SELECT e.id, e.ts, e.type, e.severity, e.device_id, {fields}
            FROM events e
            WHERE {where} {"AND " + after if after else ""} {order} LIMIT ${len(args)}""",
        *args,
    )
    return split_page(rows, query.limit, DTC_SORTS, "-ts")


async def dtc_list(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID, query: PageQuery
) -> DtcList:
    """Return the vehicle's trouble codes as set and cleared, newest first; raise
    ProblemError(404) for a vehicle the tenant does not have."""
    page, cursor = await _vehicle_events(
        conn,
        tenant,
        vehicle_id,
        [DTC_SET, DTC_CLEARED],
        query,
        "e.data ->> 'code' AS code, e.data ->> 'description' AS description",
    )
    items = [
        DtcEntry(
            id=r["id"],
            ts=r["ts"],
            action="set" if r["type"] == DTC_SET else "cleared",
            code=r["code"],
            description=r["description"],
            severity=r["severity"],
            device_id=r["device_id"],
        )
        for r in page
    ]
    return DtcList(items=items, next_cursor=cursor)


class AnomalyEntry(BaseModel):
    id: uuid.UUID
    ts: datetime
    signal: str | None = Field(description="The signal the agent found unusual, if it said")
    score: float | None = Field(description="The agent's anomaly score, if it sent one")
    severity: str
    device_id: str


class AnomalyList(BaseModel):
    items: list[AnomalyEntry] = Field(description="Newest first")
    next_cursor: str | None = None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def anomaly_list(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID, query: PageQuery
) -> AnomalyList:
    """Return the vehicle's anomaly events with their scores, newest first; raise
    ProblemError(404) for a vehicle the tenant does not have."""
    page, cursor = await _vehicle_events(
        conn,
        tenant,
        vehicle_id,
        [ANOMALY],
        query,
        "e.data ->> 'signal' AS signal, e.data ->> 'score' AS score",
    )
    items = [
        AnomalyEntry(
            id=r["id"],
            ts=r["ts"],
            signal=r["signal"],
            score=_number(r["score"]),
            severity=r["severity"],
            device_id=r["device_id"],
        )
        for r in page
    ]
    return AnomalyList(items=items, next_cursor=cursor)


@api.get(
    "/api/v1/vehicles/{vehicle_id}/anomalies",
    summary="The vehicle's anomaly events (signal and score), newest first",
    response=AnomalyList,
    permission=Permission.MAINTENANCE_READ,
    query=PageQuery,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def list_anomalies(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    query = query_model(request, PageQuery)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        anomalies = await anomaly_list(conn, tenant, vehicle_id, query)
    return json_response(anomalies)


class RiskFactor(BaseModel):
    feature: str
    value: float
    log_odds: float = Field(description="Its share of the 30-day log-odds (weight x value)")
    meaning: str


class VehicleRisk(BaseModel):
    vehicle_id: uuid.UUID
    vehicle: str
    probability_7d: float
    probability_30d: float
    probability_90d: float
    factors: list[RiskFactor] = Field(description="What raised or lowered the risk, largest first")
    method: str
    model: str = Field(description="How the model's coefficients were fitted")


class RiskList(BaseModel):
    items: list[VehicleRisk] = Field(description="Highest 30-day probability first")


METHOD = (
    "logistic regression per horizon over the last 30 days' battery and coolant trends, "
    "trouble codes, anomaly events, distance and service interval use (decision D51)"
)


async def _risk(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID, name: str, items: list[DueItem]
) -> VehicleRisk:
    model = packaged_model()
    risk = await vehicle_risk(conn, tenant, vehicle_id, datetime.now(UTC), items, model)
    p = risk.probability
    return VehicleRisk(
        vehicle_id=vehicle_id,
        vehicle=name,
        probability_7d=p[HORIZONS_DAYS[0]],
        probability_30d=p[HORIZONS_DAYS[1]],
        probability_90d=p[HORIZONS_DAYS[2]],
        factors=[
            RiskFactor(feature=c.feature, value=c.value, log_odds=c.log_odds, meaning=c.meaning)
            for c in risk.contributions
        ],
        method=METHOD,
        model=model.fitted_on,
    )


@api.get(
    "/api/v1/vehicles/{vehicle_id}/risk",
    summary="The vehicle's probability of a failure within 7, 30 and 90 days, explained",
    response=VehicleRisk,
    permission=Permission.MAINTENANCE_READ,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def get_risk(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        name = await conn.fetchval(
            "SELECT name FROM vehicles WHERE tenant_id = $1 AND id = $2", tenant, vehicle_id
        )
        if name is None:
            raise ProblemError(404, f"no vehicle {vehicle_id}")
        items = await due_items(conn, tenant, datetime.now(UTC), vehicle_id)
        risk = await _risk(conn, tenant, vehicle_id, name, items)
    return json_response(risk)


@api.get(
    "/api/v1/maintenance/risk",
    summary=f"Failure risk of the vehicles in service (up to {MAX_RISK_VEHICLES})",
    response=RiskList,
    permission=Permission.MAINTENANCE_READ,
)
async def list_risk(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        risks = await risk_list(conn, principal_of(request).tenant_id)
    return json_response(risks)


async def risk_list(conn: asyncpg.Connection, tenant: str) -> RiskList:
    """Return the failure risk of the tenant's vehicles in service (up to MAX_RISK_VEHICLES),
    highest 30-day probability first."""
    vehicles = await conn.fetch(
        "SELECT id, name FROM vehicles WHERE tenant_id = $1 AND status <> 'retired' "
        "ORDER BY name, id LIMIT $2",
        tenant,
        MAX_RISK_VEHICLES,
    )
    items = await due_items(conn, tenant, datetime.now(UTC))
    risks = [await _risk(conn, tenant, v["id"], v["name"], items) for v in vehicles]
    risks.sort(key=lambda r: -r.probability_30d)
    return RiskList(items=risks)
