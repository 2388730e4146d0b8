"""Jinja2 filters of the portal's templates: numbers, times and units as people read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

NO_VALUE = "\N{EN DASH}"


def number(value: float | int | None, digits: int = 0) -> str:
    """Return ``value`` with thousands separated and ``digits`` decimals, or an en dash."""
    if value is None:
        return NO_VALUE
    return f"{value:,.{digits}f}"


def tick(value: float) -> str:
    """Return an axis tick's value without trailing zeros (``2.5``, ``10``, ``1,000``)."""
    return f"{value:,g}" if value < 1e6 else f"{value:,.0f}"


def when(value: datetime | None) -> str:
    """Return a time in UTC as ``2026-11-29 05:40 UTC``, or an en dash."""
    if value is None:
        return NO_VALUE
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime | None) -> str:
    """Return a time in ISO 8601 for ``<time datetime=…>``."""
    return "" if value is None else value.isoformat()


FILTERS: dict[str, Callable[..., Any]] = {"number": number, "tick": tick, "when": when, "iso": iso}
