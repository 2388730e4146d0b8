"""Turn a pydantic ValidationError into messages a form shows next to its fields."""

from __future__ import annotations

from pydantic import ValidationError


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Return ``{field name: message}`` for the first error of each top-level field
    (``"form"`` for errors of the whole form)."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "form"
        errors.setdefault(name, error["msg"].removeprefix("Value error, "))
    return errors


def sentence(text: str) -> str:
    """Return ``text`` as a sentence: trimmed, capitalised, ending in a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
