"""Reports: CSV exports of trips, scores and events; report schedules that mail them; and the
tenant's retention policy for samples and rollups."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.day_range import DayRange
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, query_model
from fleetlink.cloud.api.rest import json_body, json_response
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.auth.permissions import Permission
from fleetlink.cloud.reports.csv_export import (
    ExportTooLargeError,
    events_csv,
    scores_csv,
    trips_csv,
)
from fleetlink.cloud.reports.schedule import next_run
from fleetlink.cloud.storage.retention import DEFAULT_POLICY

api = ResourceRoutes("reports")
routes = api.routes

SCHEDULE_ID = {"description": "Schedule UUID", "schema": {"type": "string", "format": "uuid"}}
Email = Annotated[str, Field(pattern=r"^[^@\s,;<>\"]{1,64}@[^@\s,;<>\"]{1,190}$")]


class TripExportQuery(DayRange):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vehicle_id: uuid.UUID | None = None
    driver_id: uuid.UUID | None = None


class EventExportQuery(DayRange):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vehicle_id: uuid.UUID | None = None


def _csv_response(text: str, name: str, first: object, last: object) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}-{first}-{last}.csv"'},
    )


@api.get(
    "/api/v1/reports/trips.csv",
    summary="Trips of a range of days as CSV (optionally one vehicle or driver)",
    response=None,
    response_media_type="text/csv",
    permission=Permission.TRIPS_READ,
    query=TripExportQuery,
    errors=(400, 422),
)
async def export_trips(request: web.Request) -> web.Response:
    query = query_model(request, TripExportQuery)
    first, last = query.days()
    async with tenant_transaction(request) as conn:
        try:
            text = await trips_csv(
                conn,
                principal_of(request).tenant_id,
                first,
                last,
                query.vehicle_id,
                query.driver_id,
            )
        except ExportTooLargeError as exc:
            raise ProblemError(422, str(exc)) from None
    return _csv_response(text, "trips", first, last)


@api.get(
    "/api/v1/reports/scores.csv",
    summary="Every driver's score, band, distance and points per event type as CSV",
    response=None,
    response_media_type="text/csv",
    permission=Permission.SCORES_READ,
    query=DayRange,
    errors=(400,),
)
async def export_scores(request: web.Request) -> web.Response:
    query = query_model(request, DayRange)
    first, last = query.days()
    async with tenant_transaction(request) as conn:
        text = await scores_csv(conn, principal_of(request).tenant_id, first, last)
    return _csv_response(text, "scores", first, last)


@api.get(
    "/api/v1/reports/events.csv",
    summary="Events the devices sent in a range of days as CSV",
    response=None,
    response_media_type="text/csv",
    permission=Permission.TRIPS_READ,
    query=EventExportQuery,
    errors=(400, 422),
)
async def export_events(request: web.Request) -> web.Response:
    query = query_model(request, EventExportQuery)
    first, last = query.days()
    async with tenant_transaction(request) as conn:
        try:
            text = await events_csv(
                conn, principal_of(request).tenant_id, first, last, query.vehicle_id
            )
        except ExportTooLargeError as exc:
            raise ProblemError(422, str(exc)) from None
    return _csv_response(text, "events", first, last)


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report: Literal["trips", "scores", "events"]
    every: Literal["daily", "weekly", "monthly"] = Field(
        description="Mailed after each UTC day, ISO week or month, covering it"
    )
    recipients: list[Email] = Field(min_length=1, max_length=20)


class Schedule(ScheduleCreate):
    id: uuid.UUID
    next_run_at: datetime
    last_run_at: datetime | None
    last_error: str | None
    created_at: datetime


class ScheduleList(BaseModel):
    items: list[Schedule]


class Deleted(BaseModel):
    deleted: bool


_SCHEDULE_COLUMNS = (
    "id, report, every, recipients, next_run_at, last_run_at, last_error, created_at"
)


def _schedule(row: asyncpg.Record) -> Schedule:
    return Schedule.model_validate({**dict(row), "recipients": list(row["recipients"])})


@api.get(
    "/api/v1/report-schedules",
    summary="The tenant's scheduled reports",
    response=ScheduleList,
    permission=Permission.REPORTS_WRITE,
)
async def list_schedules(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        rows = await conn.fetch(
            f"SELECT {_SCHEDULE_COLUMNS} FROM report_schedules WHERE tenant_id = $1 "
            "ORDER BY created_at, id LIMIT 500",
            principal_of(request).tenant_id,
        )
    return json_response(ScheduleList(items=[_schedule(r) for r in rows]))


@api.post(
    "/api/v1/report-schedules",
    summary="Mail a report to recipients after every day, week or month",
    response=Schedule,
    permission=Permission.REPORTS_WRITE,
    body=ScheduleCreate,
    status=201,
    errors=(400, 415, 422),
)
async def create_schedule(request: web.Request) -> web.Response:
    body: ScheduleCreate = await json_body(request, ScheduleCreate)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO report_schedules (id, tenant_id, report, every, recipients,
                                              next_run_at)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_SCHEDULE_COLUMNS}""",
            uuid.uuid4(),
            tenant,
            body.report,
            body.every,
            body.recipients,
            next_run(body.every, datetime.now(UTC)),
        )
        schedule = _schedule(row)
        await record_change(request, conn, "create", "report_schedule", schedule.id, after=schedule)
    return json_response(schedule, status=201)


@api.delete(
    "/api/v1/report-schedules/{schedule_id}",
    summary="Stop a scheduled report",
    response=Deleted,
    permission=Permission.REPORTS_WRITE,
    path_params={"schedule_id": SCHEDULE_ID},
    errors=(400, 404),
)
async def delete_schedule(request: web.Request) -> web.Response:
    schedule_id = path_uuid(request, "schedule_id")
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            f"DELETE FROM report_schedules WHERE tenant_id = $1 AND id = $2 "
            f"RETURNING {_SCHEDULE_COLUMNS}",
            principal_of(request).tenant_id,
            schedule_id,
        )
        if row is None:
            raise ProblemError(404, f"no report schedule {schedule_id}")
        await record_change(
            request, conn, "delete", "report_schedule", schedule_id, before=_schedule(row)
        )
    return json_response(Deleted(deleted=True))


Days = Annotated[int, Field(ge=1, le=36_500, strict=True)]


class RetentionPolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_days: Days = Field(description="Samples older than this are deleted")
    rollup_1m_days: Days
    rollup_1h_days: Days


class RetentionPolicyDocument(RetentionPolicyBody):
    default: bool = Field(description="True: the tenant has not set its own")


@api.get(
    "/api/v1/retention",
    summary="How long the tenant's samples and rollups are kept",
    response=RetentionPolicyDocument,
    permission=Permission.REPORTS_WRITE,
)
async def get_retention(request: web.Request) -> web.Response:
    async with tenant_transaction(request) as conn:
        row = await conn.fetchrow(
            "SELECT raw_days, rollup_1m_days, rollup_1h_days FROM retention_policies "
            "WHERE tenant_id = $1",
            principal_of(request).tenant_id,
        )
    if row is None:
        body = RetentionPolicyDocument(
            raw_days=DEFAULT_POLICY.raw_days,
            rollup_1m_days=DEFAULT_POLICY.rollup_1m_days,
            rollup_1h_days=DEFAULT_POLICY.rollup_1h_days,
            default=True,
        )
    else:
        body = RetentionPolicyDocument(**dict(row), default=False)
    return json_response(body)


@api.route(
    "PUT",
    "/api/v1/retention",
    summary="Set how long the tenant's samples and rollups are kept",
    response=RetentionPolicyDocument,
    permission=Permission.REPORTS_WRITE,
    body=RetentionPolicyBody,
    errors=(400, 415, 422),
)
async def put_retention(request: web.Request) -> web.Response:
    body: RetentionPolicyBody = await json_body(request, RetentionPolicyBody)
    tenant = principal_of(request).tenant_id
    async with tenant_transaction(request) as conn:
        await conn.execute(
            """INSERT INTO retention_policies (tenant_id, raw_days, rollup_1m_days,
                                               rollup_1h_days)
               VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE
               SET raw_days = EXCLUDED.raw_days, rollup_1m_days = EXCLUDED.rollup_1m_days,
                   rollup_1h_days = EXCLUDED.rollup_1h_days, updated_at = now()""",
            tenant,
            body.raw_days,
            body.rollup_1m_days,
            body.rollup_1h_days,
        )
        after = RetentionPolicyDocument(**body.model_dump(), default=False)
        await record_change(request, conn, "update", "retention", tenant, after=after)
    return json_response(after)
