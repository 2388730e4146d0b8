"""Reading path and query parameters into typed values, or a 400 problem."""

from __future__ import annotations

import uuid
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.problems import ProblemError

M = TypeVar("M", bound=BaseModel)


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """Return path parameter ``name`` as a UUID; raise ProblemError(400) if it is not one."""
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ProblemError(400, f"{name} {raw!r} is not a UUID") from None


def query_model(request: web.Request, model: type[M]) -> M:
    """Return the query string validated as ``model``; raise ProblemError(400) listing errors."""
    data: dict[str, str] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise ProblemError(400, f"query parameter {key!r} is given {len(values)} times")
        data[key] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"parameter": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise ProblemError(400, "invalid query parameters", errors=errors) from None
