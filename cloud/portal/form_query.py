"""Read a page's query string as the API's query model, the way HTML forms send it."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.problems import ProblemError

M = TypeVar("M", bound=BaseModel)


def form_query(request: web.Request, model: type[M], drop: tuple[str, ...] = ()) -> M:
    """Return the query string as ``model``; a form's empty fields count as not given and the
    names in ``drop`` (the portal's own parameters) are left out.

    Raises ProblemError(400) naming the parameters that do not fit.
    """
    data = {k: v for k, v in request.query.items() if v.strip() and k not in drop}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        names = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise ProblemError(400, f"These search fields do not fit: {names}.") from None
