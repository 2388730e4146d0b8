"""Where the team's field data is: ``../shared/field-data`` beside the checkout, else the
workplace's copy at ``/work/shared/field-data`` (a clone elsewhere, as CI makes). Tests read it
in place; it is never copied into the repository."""

from __future__ import annotations

from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[2] / "shared" / "field-data"
_WORKPLACE = Path("/work/shared/field-data")


def field_data(name: str) -> Path:
    """Return the field-data folder ``name`` (it may not exist: tests skip with a reason)."""
    beside = _BESIDE / name
    return beside if beside.is_dir() else _WORKPLACE / name
