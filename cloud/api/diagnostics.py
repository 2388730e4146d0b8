"""``/api/v1/diagnostic-reports``: reports from the technician's scan tool (``fleetlink diag
report``), attached to the vehicle whose VIN they carry, and each vehicle's diagnostic history.

A report is append-only: it records what the vehicle reported at a moment, so it is never
edited; the upload is audited like any change.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import PageQuery, SortKey, json_body, keyset, split_page
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import fetch_vehicle
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.shared.vin import VinError, normalize_vin

api = ResourceRoutes("diagnostics")
routes = api.routes

REPORT_ID = {
    "description": "Diagnostic report UUID",
    "schema": {"type": "string", "format": "uuid"},
}
VEHICLE_ID = {"description": "Vehicle UUID", "schema": {"type": "string", "format": "uuid"}}
_NEWEST_FIRST = "-created_at"
_SORTS = {"created_at": SortKey("created_at", "d.created_at", "timestamptz")}
_MAX_CODES = 500
_COLUMNS = "d.id, d.vehicle_id, d.vin, d.created_at, d.scanned_at, d.uploaded_by, d.mil_on, d.codes"


class ReportCode(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(pattern=r"^[PCBU][0-3][0-9A-F]{3}$")
    status: str = Field(max_length=20)
    description: str = Field("", max_length=500)


class ReportDocument(BaseModel):
    """The report as ``fleetlink diag report`` writes it; fields beyond these are kept as sent."""

    model_config = ConfigDict(extra="allow")

    format: str = Field(pattern=r"^fleetlink-diagnostic-report/1$")
    created_at: datetime
    mil_on: bool | None = None
    codes: list[ReportCode] = Field(default_factory=list, max_length=_MAX_CODES)


class ReportUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vin: str = Field(min_length=17, max_length=17, description="The vehicle's VIN")
    report: ReportDocument

    @field_validator("vin")
    @classmethod
    def _vin(cls, value: str) -> str:
        try:
            return normalize_vin(value)
        except VinError as exc:
            raise ValueError(str(exc)) from None


class ReportSummary(BaseModel):
    id: uuid.UUID
    vehicle_id: uuid.UUID
    vin: str
    created_at: datetime
    scanned_at: datetime
    uploaded_by: str
    mil_on: bool | None
    codes: list[str]


class Report(ReportSummary):
    report: dict[str, Any]


class ReportPage(BaseModel):
    items: list[ReportSummary]
    next_cursor: str | None = None


@api.post(
    "/api/v1/diagnostic-reports",
    summary="Attach a scan tool's report to the vehicle with its VIN",
    response=Report,
    permission=Permission.DIAGNOSTICS_WRITE,
    body=ReportUpload,
    status=201,
    errors=(400, 404, 415, 422),
)
async def upload_report(request: web.Request) -> web.Response:
    body: ReportUpload = await json_body(request, ReportUpload)
    principal = principal_of(request)
    document = body.report.model_dump(mode="json")
    codes = sorted({c.code for c in body.report.codes if c.status != "permanent"})
    async with tenant_transaction(request) as conn:
        vehicle_id = await conn.fetchval(
            "SELECT id FROM vehicles WHERE tenant_id = $1 AND vin = $2",
            principal.tenant_id,
            body.vin,
        )
        if vehicle_id is None:
            raise ProblemError(
                404,
                f"no vehicle with VIN {body.vin}: add it (POST /api/v1/vehicles) and upload again",
            )
        row = await conn.fetchrow(
            "INSERT INTO diagnostic_reports AS d (id, tenant_id, vehicle_id, vin, scanned_at, "
            "uploaded_by, mil_on, codes, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            f"RETURNING {_COLUMNS}, d.report",
            uuid.uuid4(),
            principal.tenant_id,
            vehicle_id,
            body.vin,
            body.report.created_at,
            principal.actor,
            body.report.mil_on,
            codes,
            document,
        )
        created = Report.model_validate(dict(row))
        await record_change(
            request,
            conn,
            "create",
            "diagnostic_report",
            created.id,
            after={"vehicle_id": str(vehicle_id), "vin": body.vin, "codes": codes},
        )
    return web.json_response(text=created.model_dump_json(), status=201)


@api.get(
    "/api/v1/vehicles/{vehicle_id}/diagnostic-reports",
    summary="A vehicle's diagnostic history, newest first",
    response=ReportPage,
    permission=Permission.DIAGNOSTICS_READ,
    query=PageQuery,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def vehicle_reports(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    query = query_model(request, PageQuery)
    async with tenant_transaction(request) as conn:
        page = await report_page(conn, principal_of(request).tenant_id, vehicle_id, query)
    return web.json_response(text=page.model_dump_json())


async def report_page(
    conn: asyncpg.Connection, tenant: str, vehicle_id: uuid.UUID, query: PageQuery
) -> ReportPage:
    """Return the vehicle's diagnostic reports, newest first; raise ProblemError(404) for a
    vehicle the tenant does not have, 400 for a cursor that does not fit."""
    args: list[Any] = [tenant, vehicle_id]
    conditions = ["d.tenant_id = $1", "d.vehicle_id = $2"]
    after, order = keyset(_SORTS, _NEWEST_FIRST, query.cursor, "d.id", args)
    if after:
        conditions.append(after)
    args.append(query.limit + 1)
    await fetch_vehicle(conn, tenant, vehicle_id)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM diagnostic_reports d WHERE {' AND '.join(conditions)} "
        f"{order} LIMIT ${len(args)}",
        *args,
    )
    shown, cursor = split_page(rows, query.limit, _SORTS, _NEWEST_FIRST)
    return ReportPage(
        items=[ReportSummary.model_validate(dict(r)) for r in shown], next_cursor=cursor
    )


@api.get(
    "/api/v1/diagnostic-reports/{report_id}",
    summary="One diagnostic report, whole",
    response=Report,
    permission=Permission.DIAGNOSTICS_READ,
    path_params={"report_id": REPORT_ID},
    errors=(400, 404),
)
async def get_report(request: web.Request) -> web.Response:
    report_id = path_uuid(request, "report_id")
    principal = principal_of(request)
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS}, d.report FROM diagnostic_reports d "
            "WHERE d.tenant_id = $1 AND d.id = $2",
            principal.tenant_id,
            report_id,
        )
    if row is None:
        raise ProblemError(404, f"no diagnostic report {report_id}")
    return web.json_response(text=Report.model_validate(dict(row)).model_dump_json())
