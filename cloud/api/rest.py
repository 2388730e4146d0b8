"""The REST conventions every resource route shares: cursor pages and sorting, ETag and
If-Match, JSON bodies in and out, and text PostgreSQL can store."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetlink.cloud.api.problems import ProblemError

MAX_PAGE = 200


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"Items per page (1-{MAX_PAGE})")
    cursor: str | None = Field(
        None, max_length=500, description="The next_cursor of the previous page"
    )


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed


_PARSERS: dict[str, Callable[[str], Any]] = {
    "text": str,
    "int": lambda value: _bounded(int(value)),
    "timestamptz": _timestamp,
    "uuid": uuid.UUID,
    "bigint": lambda value: _bounded(int(value)),
}


def _bounded(value: int) -> int:
    if not -(2**63) <= value < 2**63:
        raise ValueError("out of range")
    return value


@dataclass(frozen=True, slots=True)
class SortKey:
    """A sortable column: its name in the result row, the SQL expression (never NULL) that
    orders it, and that expression's PostgreSQL type."""

    column: str
    expression: str
    sql_type: str


def encode_cursor(sorts: dict[str, SortKey], sort: str, last_row: Mapping[str, Any]) -> str:
    """Return the cursor of the page after ``last_row`` in the order ``sort``."""
    key = sorts[sort.lstrip("-")]
    value = last_row[key.column]
    if value is None:
        value = "" if key.sql_type == "text" else 0
    elif isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([sort, str(value), str(last_row["id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[str, str]:
    """Return the (sort value, id) a cursor continues after; ProblemError(400) if it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        saved_sort, value, row_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, TypeError):
        raise ProblemError(400, "cursor is not one this API returned") from None
    if saved_sort != sort or not isinstance(row_id, str) or not isinstance(value, str):
        raise ProblemError(400, "cursor belongs to another sort order; start from the first page")
    try:
        check_text([value, row_id], "cursor")
    except ProblemError:
        raise ProblemError(400, "cursor is not one this API returned") from None
    return value, row_id


def keyset(
    sorts: dict[str, SortKey],
    sort: str,
    cursor: str | None,
    id_column: str,
    args: list[Any],
    id_type: str = "uuid",
) -> tuple[str, str]:
    """Return (extra WHERE condition or '', ORDER BY clause) for ``sort`` after ``cursor``;
    ``id_column`` (of PostgreSQL type ``id_type``) breaks ties. Parameters go into ``args``.
    """
    descending = sort.startswith("-")
    key = sorts[sort.lstrip("-")]
    direction = "DESC" if descending else "ASC"
    order = f"ORDER BY {key.expression} {direction}, {id_column} {direction}"
    if cursor is None:
        return "", order
    value, row_id = decode_cursor(cursor, sort)
    try:
        args.extend([_PARSERS[key.sql_type](value), _PARSERS[id_type](row_id)])
    except (ValueError, OverflowError):
        raise ProblemError(400, "cursor is not one this API returned") from None
    op = "<" if descending else ">"
    n = len(args)
    condition = f"({key.expression}, {id_column}) {op} (${n - 1}::{key.sql_type}, ${n}::{id_type})"
    return condition, order


def split_page(
    rows: Sequence[Mapping[str, Any]], limit: int, sorts: dict[str, SortKey], sort: str
) -> tuple[Sequence[Mapping[str, Any]], str | None]:
    """Split rows fetched with ``LIMIT limit + 1`` into this page and the next page's cursor."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(sorts, sort, rows[limit - 1])


def sort_pattern(sorts: dict[str, SortKey]) -> str:
    names = "|".join(sorted(sorts))
    return rf"^-?({names})$"


def etag(version: int) -> str:
    return f'"{version}"'


def check_text(value: Any, where: str) -> None:
    """Raise ProblemError(422) if any string in ``value`` holds a NUL or a lone surrogate:
    neither can be stored as text (PostgreSQL refuses both)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ProblemError(422, f"{where}: text cannot contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProblemError(422, f"{where}: text is not valid Unicode") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{where}[{index}]")


def require_if_match(request: web.Request, current_version: int) -> None:
    """Raise 428 without If-Match, 412 if it names another version than ``current_version``."""
    check_if_match(request.headers.get("If-Match", ""), current_version)


def check_if_match(header: str, current_version: int) -> None:
    """Raise 428 for an empty If-Match value ``header``, 412 if it names another version than
    ``current_version`` (a portal form sends the ETag it was rendered with)."""
    header = header.strip()
    if not header:
        raise ProblemError(428, "send If-Match with the ETag of the version you are changing")
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    if "*" not in tags and etag(current_version) not in tags:
        raise ProblemError(
            412, f"the record changed (now version {current_version}); reload and retry"
        )


async def json_body(request: web.Request, model: type[BaseModel]) -> Any:
    """Return the JSON body validated as ``model``; 415/400/422 problems name what is wrong."""
    if request.content_type != "application/json":
        raise ProblemError(415, "send the body as application/json")
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ProblemError(400, "the body is not valid JSON") from None
    check_text(data, "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise ProblemError(422, "the body is not valid", errors=errors) from None


ETAG_HEADER = {
    "ETag": {"description": "The version to send back in If-Match", "schema": {"type": "string"}}
}


def json_response(model: BaseModel, status: int = 200, version: int | None = None) -> web.Response:
    """Return ``model`` as JSON, with its ETag when it has a ``version``."""
    headers = {"ETag": etag(version)} if version is not None else None
    return web.json_response(text=model.model_dump_json(), status=status, headers=headers)
