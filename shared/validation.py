"""Validation errors worded for people: one line per field, naming the file and the field.

Device configurations and firmware profiles are TOML files validated by pydantic; a broken
one stops start-up with ``device.toml: obd.poll[1].rate_hz: must be > 0``.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _describe(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "extra_forbidden":
        message = "is not a known setting"
    return f"{_field_path(error['loc'])}: {message}"


def describe_errors(exc: ValidationError, source: str) -> str:
    """Return one ``source: field: problem`` line per error in ``exc``."""
    return "\n".join(f"{source}: {_describe(error)}" for error in exc.errors())
