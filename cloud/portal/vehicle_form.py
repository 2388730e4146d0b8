"""Read the portal's vehicle forms (add a vehicle, edit its profile) as the fields of the API's
vehicle models, and put the API's refusals next to the form's fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.portal.form_errors import field_errors


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
    return {name: _sentence(message) for name, message in field_errors(exc).items()}


def refusal_errors(refused: ProblemError) -> dict[str, str]:
    """Return the API's refusal as ``{field name: sentence}`` for the fields it names, or for
    the whole form (``"form"``) when it names none."""
    fields = [e["field"] for e in refused.errors or [] if isinstance(e.get("field"), str)]
    return {field: _sentence(refused.detail) for field in fields or ["form"]}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
