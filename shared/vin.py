"""VINs (ISO 3779): normalised, checked, and decoded offline with ``vininfo``.

The check digit (position 9, 49 CFR 565) is mandatory in North America (WMIs starting 1-5) and
China (L); elsewhere manufacturers may use position 9 for other things, so a VIN from those
regions is accepted whatever its 9th character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from vininfo import Vin

_SHAPE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
CHECK_DIGIT_REGIONS = ("1", "2", "3", "4", "5", "L")


class VinError(ValueError):
    """Raised for text that is not a valid VIN; the message says what is wrong."""


def check_digit(vin: str) -> str:
    """Return the check digit (``0``-``9`` or ``X``) that position 9 of ``vin`` should hold."""
    total = sum(_VALUES[c] * w for c, w in zip(vin, _WEIGHTS, strict=True)) % 11
    return "X" if total == 10 else str(total)


def normalize_vin(text: str) -> str:
    """Return ``text`` as a VIN (trimmed, upper-case), checked; raise VinError saying why not."""
    vin = text.strip().upper()
    if len(vin) != 17:
        raise VinError(f"a VIN has 17 characters, not {len(vin)}")
    if not _SHAPE.match(vin):
        bad = sorted({c for c in vin if not _SHAPE.match(c * 17)})
        hint = " (I, O and Q are never used)" if set(bad) & set("IOQ") else ""
        raise VinError(f"a VIN has only A-Z and 0-9; not {', '.join(map(repr, bad))}{hint}")
    if vin[0] in CHECK_DIGIT_REGIONS and vin[8] != check_digit(vin):
        raise VinError(
            f"check digit (9th character) is {vin[8]!r} but the VIN's characters give "
            f"{check_digit(vin)!r}: a character is probably mistyped"
        )
    return vin


@dataclass(frozen=True, slots=True)
class VinInfo:
    wmi: str
    make: str | None
    model: str | None
    model_year: int | None
    country: str | None
    region: str | None


def decode_vin(vin: str) -> VinInfo:
    """Return what the VIN tells offline: maker, model where known, model year, origin.

    Of the years a model-year code can mean (every 30 years), the latest not after next year.
    """
    vin = normalize_vin(vin)
    decoded = Vin(vin)
    latest = datetime.now(UTC).year + 1
    years = [y for y in decoded.years if y <= latest]
    details = decoded.details
    model = getattr(details, "model", None) if details is not None else None
    return VinInfo(
        wmi=decoded.wmi,
        make=_text(decoded.manufacturer),
        model=_text(model),
        model_year=max(years) if years else None,
        country=_text(decoded.country),
        region=_text(decoded.region),
    )


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text and text not in ("UnsupportedBrand", "Unknown") else None
