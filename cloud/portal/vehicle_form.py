"""Read the portal's vehicle forms (add a vehicle, edit its profile) as the fields of the API's
vehicle models, and put the API's refusals next to the form's fields."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.portal.form_errors import field_errors, sentence
from fleetlink.cloud.portal.form_page import FormRefused

M = TypeVar("M", bound=BaseModel)


def profile_fields(form: dict[str, str], names: Iterable[str]) -> dict[str, Any]:
    """Return the form's fields of ``names`` trimmed, an empty one as None; ``tags`` is the
    list of its comma-separated tags ([] when empty)."""
    fields: dict[str, Any] = {}
    for name in names:
        text = form.get(name, "").strip()
        if name == "tags":
            fields[name] = [t.strip() for t in text.split(",") if t.strip()]
        else:
            fields[name] = text or None
    return fields


def invalid_fields(exc: ValidationError) -> dict[str, str]:
    """Return the model's complaints as ``{field name: sentence}``."""
    return {name: sentence(message) for name, message in field_errors(exc).items()}


def parsed(
    model: type[M],
    fields: dict[str, Any],
    invalid: Callable[[ValidationError], dict[str, str]] = invalid_fields,
) -> M:
    """Return ``fields`` validated as ``model``; raise FormRefused (422) with the model's
    complaints by field, as ``invalid`` words them."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise FormRefused(422, invalid(exc)) from None


def add_refusal(refused: ProblemError) -> FormRefused:
    """Return the refusal of an add form the API refused: a conflict is 409, the rest 422."""
    return FormRefused(
        refused.status if refused.status in (409, 422) else 422, refusal_errors(refused)
    )


def refusal_errors(refused: ProblemError) -> dict[str, str]:
    """Return the API's refusal as ``{field name: sentence}`` for the fields it names, or for
    the whole form (``"form"``) when it names none."""
    fields = [e["field"] for e in refused.errors or [] if isinstance(e.get("field"), str)]
    return {field: sentence(refused.detail) for field in fields or ["form"]}


def edit_refusal(refused: ProblemError, what: str) -> FormRefused:
    """Return the refusal of an edit form the API refused: a stale form (412, 428: someone
    changed ``what`` after the form was shown) and a conflict are 409, the rest 422. A 404 is
    raised again, for the page's own 404."""
    if refused.status == 404:
        raise refused
    if refused.status in (412, 428):
        stale = (
            f"Someone else changed this {what} after this form was shown, so nothing was saved. "
            "Reload the page to see their change, then make yours again."
        )
        return FormRefused(409, {"form": stale})
    return FormRefused(409 if refused.status == 409 else 422, refusal_errors(refused))
