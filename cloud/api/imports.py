"""``POST /api/v1/vehicles/import`` and ``/api/v1/drivers/import``: CSV files of a fleet, with a
dry run that reports what would change and why rows are refused.

Rows are matched to existing records by VIN (else plate) for vehicles and by employee number
for drivers. An empty cell leaves a field as it is. A file is applied whole or not at all.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetlink.cloud.api.access import principal_of, record_change, tenant_transaction
from fleetlink.cloud.api.drivers import PERSONAL, DriverCreate
from fleetlink.cloud.api.drivers import _context as driver_context
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import query_model
from fleetlink.cloud.api.rest import check_text
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.api.vehicles import VehicleCreate, default_name, vin_completed
from fleetlink.cloud.app_keys import FIELD_CIPHER
from fleetlink.cloud.auth.permissions import Permission

api = ResourceRoutes("imports")
routes = api.routes

MAX_ROWS = 10_000
VEHICLE_COLUMNS = {
    "vin",
    "plate",
    "name",
    "make",
    "model",
    "year",
    "fuel_type",
    "tank_capacity_l",
    "odometer_km",
    "engine_hours",
    "status",
    "tags",
}
DRIVER_COLUMNS = {"employee_number", "name", "email", "licence_number", "phone", "tags"}
Action = Literal["create", "update", "unchanged", "refused"]


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(True, description="Only report what would change (the default)")


class CellError(BaseModel):
    field: str
    message: str


class RowReport(BaseModel):
    row: int = Field(description="Line of the file, the header being line 1")
    action: Action
    key: str | None = Field(description="The VIN, plate or employee number the row matched on")
    changes: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="field: {before, after} for creates and updates"
    )
    errors: list[CellError] = Field(default_factory=list)


class ImportReport(BaseModel):
    dry_run: bool
    applied: bool
    created: int
    updated: int
    unchanged: int
    refused: int
    rows: list[RowReport]


class ImportFile(BaseModel):
    """The CSV file itself (text/csv, UTF-8, comma or semicolon separated, header first)."""


@dataclass
class _Row:
    number: int
    key: str | None
    fields: dict[str, Any]
    report: RowReport
    existing_id: uuid.UUID | None = None
    changes: dict[str, Any] = field(default_factory=dict)


def read_csv(text: str, allowed: set[str], custom: bool) -> list[tuple[int, dict[str, str]]]:
    """Return (line, {column: cell}) per data row; raise ProblemError(422) for a bad file."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ProblemError(422, "the file is empty: the first line names the columns")
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        unknown = [
            h for h in header if h not in allowed and not (custom and h.startswith("custom."))
        ]
        if unknown or len(set(header)) != len(header):
            problem = f"unknown columns {unknown}" if unknown else "a column is named twice"
            raise ProblemError(
                422,
                f"{problem}; known columns: {', '.join(sorted(allowed))}"
                + (", custom.<name>" if custom else ""),
            )
        rows: list[tuple[int, dict[str, str]]] = []
        for cells in reader:
            if len(rows) >= MAX_ROWS:
                raise ProblemError(422, f"at most {MAX_ROWS} rows per file")
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                cells = cells + [""] * (len(header) - len(cells))
            rows.append((reader.line_num, dict(zip(header, cells[: len(header)], strict=True))))
    except csv.Error as exc:
        raise ProblemError(422, f"line {reader.line_num}: not valid CSV: {exc}") from None
    return rows


def _errors(exc: ValidationError) -> list[CellError]:
    return [
        CellError(field=".".join(str(p) for p in e["loc"]) or "(row)", message=e["msg"])
        for e in exc.errors(include_url=False)
    ]


def _cells(cells: dict[str, str]) -> dict[str, Any]:
    """Return the non-empty cells, with tags split and custom.* gathered."""
    data: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for column, raw in cells.items():
        value = raw.strip()
        if not value:
            continue
        if column.startswith("custom."):
            custom[column.removeprefix("custom.")] = value
        elif column == "tags":
            data["tags"] = [t for t in value.replace(";", "|").split("|") if t.strip()]
        else:
            data[column] = value
    if custom:
        data["custom"] = custom
    return data


async def _read_body(request: web.Request) -> str:
    if request.content_type not in ("text/csv", "text/plain"):
        raise ProblemError(415, "send the file as text/csv")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemError(422, f"the file is not UTF-8 (byte {exc.start})") from None
    check_text(text, "file")
    return text


def _report(rows: list[_Row], dry_run: bool, applied: bool) -> web.Response:
    counts = {
        a: sum(1 for r in rows if r.report.action == a)
        for a in ("create", "update", "unchanged", "refused")
    }
    body = ImportReport(
        dry_run=dry_run,
        applied=applied,
        created=counts["create"],
        updated=counts["update"],
        unchanged=counts["unchanged"],
        refused=counts["refused"],
        rows=[r.report for r in rows],
    )
    return web.json_response(text=body.model_dump_json())


def _plan(row: _Row, current: dict[str, Any] | None) -> None:
    """Classify ``row`` against the record it matches (None: a new one)."""
    if current is None:
        row.report.action = "create"
        row.report.changes = {k: {"before": None, "after": v} for k, v in row.fields.items()}
        return
    row.changes = {k: v for k, v in row.fields.items() if current.get(k) != v}
    row.report.action = "update" if row.changes else "unchanged"
    row.report.changes = {k: {"before": current.get(k), "after": v} for k, v in row.changes.items()}


def _refuse(row: _Row, errors: list[CellError]) -> None:
    row.report.action = "refused"
    row.report.errors = errors


@api.post(
    "/api/v1/vehicles/import",
    summary="Import vehicles from CSV (dry_run=true reports what would change)",
    response=ImportReport,
    permission=Permission.VEHICLES_WRITE,
    query=ImportQuery,
    body=ImportFile,
    body_media_type="text/csv",
    errors=(400, 409, 413, 415, 422),
)
async def import_vehicles(request: web.Request) -> web.Response:
    query = query_model(request, ImportQuery)
    principal = principal_of(request)
    cells = read_csv(await _read_body(request), VEHICLE_COLUMNS, custom=True)
    async with tenant_transaction(request) as conn:
        existing = await conn.fetch(
            "SELECT id, vin, plate, name, make, model, year, fuel_type, tank_capacity_l, "
            "odometer_km, engine_hours, status, tags, custom FROM vehicles WHERE tenant_id = $1",
            principal.tenant_id,
        )
        by_vin = {r["vin"]: r for r in existing if r["vin"]}
        by_plate = {r["plate"]: r for r in existing if r["plate"]}
        rows, seen = [], set()
        for number, raw in cells:
            row = _Row(number, None, {}, RowReport(row=number, action="refused", key=None))
            rows.append(row)
            try:
                model = VehicleCreate.model_validate(_cells(raw))
            except ValidationError as exc:
                _refuse(row, _errors(exc))
                continue
            fields = vin_completed(model.model_dump(exclude_unset=True, exclude_none=True))
            row.key = fields.get("vin") or fields.get("plate")
            row.report.key = row.key
            if row.key is None:
                _refuse(row, [CellError(field="vin", message="give a VIN or a plate to match on")])
                continue
            if row.key in seen:
                _refuse(
                    row,
                    [
                        CellError(
                            field="vin" if fields.get("vin") else "plate",
                            message="appears on an earlier row of this file",
                        )
                    ],
                )
                continue
            seen.add(row.key)
            match = by_vin.get(fields.get("vin")) or by_plate.get(fields.get("plate"))
            if match is not None and match["id"] in seen:
                _refuse(
                    row,
                    [CellError(field="plate", message="an earlier row changes the same vehicle")],
                )
                continue
            if match is not None:
                seen.add(match["id"])
            if match is None:
                fields.setdefault("name", default_name(fields))
                if not fields["name"]:
                    _refuse(
                        row,
                        [CellError(field="name", message="give a name, plate, or make and model")],
                    )
                    continue
            row.fields = fields
            row.existing_id = match["id"] if match else None
            _plan(row, dict(match) if match else None)
        applied = False
        if not query.dry_run and not any(r.report.action == "refused" for r in rows):
            await _apply_vehicles(conn, request, rows)
            applied = True
    return _report(rows, query.dry_run, applied)


async def _apply_vehicles(conn: asyncpg.Connection, request: web.Request, rows: list[_Row]) -> None:
    principal = principal_of(request)
    try:
        for row in rows:
            if row.report.action == "create":
                vehicle_id = uuid.uuid4()
                columns = {"id": vehicle_id, "tenant_id": principal.tenant_id, **row.fields}
                marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
                await conn.execute(
                    f"INSERT INTO vehicles ({', '.join(columns)}) VALUES ({marks})",
                    *columns.values(),
                )
                await record_change(
                    request,
                    conn,
                    "import_create",
                    "vehicle",
                    vehicle_id,
                    after=row.fields,
                )
            elif row.report.action == "update":
                sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(row.changes, start=3))
                await conn.execute(
                    f"UPDATE vehicles SET {sets}, version = version + 1, updated_at = now() "
                    "WHERE tenant_id = $1 AND id = $2",
                    principal.tenant_id,
                    row.existing_id,
                    *row.changes.values(),
                )
                await record_change(
                    request,
                    conn,
                    "import_update",
                    "vehicle",
                    row.existing_id,
                    after=row.changes,
                )
    except asyncpg.UniqueViolationError:
        raise ProblemError(
            409, "a VIN or plate of the file belongs to another vehicle; nothing was imported"
        ) from None


@api.post(
    "/api/v1/drivers/import",
    summary="Import drivers from CSV (dry_run=true reports what would change)",
    response=ImportReport,
    permission=Permission.DRIVERS_WRITE,
    query=ImportQuery,
    body=ImportFile,
    body_media_type="text/csv",
    errors=(400, 403, 409, 413, 415, 422),
)
async def import_drivers(request: web.Request) -> web.Response:
    query = query_model(request, ImportQuery)
    principal = principal_of(request)
    cells = read_csv(await _read_body(request), DRIVER_COLUMNS, custom=False)
    if any(raw.get(c, "").strip() for _, raw in cells for c in PERSONAL) and not principal.can(
        Permission.DRIVERS_PERSONAL, safe=False
    ):
        raise ProblemError(403, "importing licence numbers or phones needs drivers:personal")
    cipher = request.app[FIELD_CIPHER]
    async with tenant_transaction(request) as conn:
        existing = await conn.fetch(
            "SELECT id, employee_number, name, email, licence_number_enc, phone_enc, tags "
            "FROM drivers WHERE tenant_id = $1 AND employee_number IS NOT NULL",
            principal.tenant_id,
        )
        current: dict[str, dict[str, Any]] = {}
        for r in existing:
            record = {k: r[k] for k in ("id", "employee_number", "name", "email", "tags")}
            for column in PERSONAL:
                token = r[f"{column}_enc"]
                context = driver_context(principal.tenant_id, r["id"], column)
                record[column] = cipher.decrypt(token, context) if token else None
            current[r["employee_number"]] = record
        rows, seen = [], set()
        for number, raw in cells:
            row = _Row(number, None, {}, RowReport(row=number, action="refused", key=None))
            rows.append(row)
            data = _cells(raw)
            key = data.get("employee_number")
            row.report.key = key
            if not key:
                _refuse(
                    row, [CellError(field="employee_number", message="is required to match on")]
                )
                continue
            match = current.get(key)
            try:
                DriverCreate.model_validate({"name": match["name"] if match else None, **data})
            except ValidationError as exc:
                _refuse(row, _errors(exc))
                continue
            if key in seen:
                _refuse(
                    row,
                    [
                        CellError(
                            field="employee_number",
                            message="appears on an earlier row of this file",
                        )
                    ],
                )
                continue
            seen.add(key)
            row.key, row.fields = key, data
            row.existing_id = match["id"] if match else None
            _plan(row, match)
        applied = False
        if not query.dry_run and not any(r.report.action == "refused" for r in rows):
            await _apply_drivers(conn, request, rows)
            applied = True
    for row in rows:  # the report shows personal fields only as changed, never their values
        for column in PERSONAL:
            if column in row.report.changes:
                row.report.changes[column] = {"before": "…", "after": "…"}
    return _report(rows, query.dry_run, applied)


async def _apply_drivers(conn: asyncpg.Connection, request: web.Request, rows: list[_Row]) -> None:
    principal = principal_of(request)
    cipher = request.app[FIELD_CIPHER]

    def columns(driver_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in fields.items():
            if name in PERSONAL:
                out[f"{name}_enc"] = cipher.encrypt(
                    value, driver_context(principal.tenant_id, driver_id, name)
                )
            else:
                out[name] = value
        return out

    for row in rows:
        if row.report.action == "create":
            driver_id = uuid.uuid4()
            values = {
                "id": driver_id,
                "tenant_id": principal.tenant_id,
                **columns(driver_id, row.fields),
            }
            marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
            await conn.execute(
                f"INSERT INTO drivers ({', '.join(values)}) VALUES ({marks})", *values.values()
            )
            await record_change(
                request,
                conn,
                "import_create",
                "driver",
                driver_id,
                after={"fields": sorted(row.fields)},
            )
        elif row.report.action == "update" and row.existing_id is not None:
            values = columns(row.existing_id, row.changes)
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, start=3))
            await conn.execute(
                f"UPDATE drivers SET {sets}, version = version + 1, updated_at = now() "
                "WHERE tenant_id = $1 AND id = $2",
                principal.tenant_id,
                row.existing_id,
                *values.values(),
            )
            await record_change(
                request,
                conn,
                "import_update",
                "driver",
                row.existing_id,
                after={"fields": sorted(row.changes)},
            )
