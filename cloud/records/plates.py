"""Licence plates: one normal form so that a search and a CSV import find the same vehicle."""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 15
_DASHES = re.compile(r"[\u2010-\u2015\u2212_]")
_SPACES = re.compile(r"\s+")
_ALLOWED = re.compile(r"^[0-9A-ZÄÖÜÅÆØÉÈÇÑŁŚŻŹĆŃĘĄ -]+$")


class PlateError(ValueError):
    """Raised for text that cannot be a licence plate."""


def normalize_plate(text: str) -> str:
    """Return the plate trimmed, upper-cased, with one kind of dash and single spaces.

    Raises PlateError for an empty plate, one over 15 characters, or other characters than
    letters, digits, spaces and dashes.
    """
    plate = unicodedata.normalize("NFC", text).strip().upper()
    plate = _SPACES.sub(" ", _DASHES.sub("-", plate))
    plate = re.sub(r" ?- ?", "-", plate).strip("- ")
    if not plate:
        raise PlateError("a plate needs at least one letter or digit")
    if len(plate) > MAX_LENGTH:
        raise PlateError(f"a plate has at most {MAX_LENGTH} characters")
    if not _ALLOWED.match(plate):
        raise PlateError("a plate has letters, digits, spaces and dashes only")
    return plate
