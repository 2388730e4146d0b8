"""Vehicle identification numbers (ISO 3779 / FMVSS 115) with a correct check digit."""

from __future__ import annotations

import random

_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
# World manufacturer identifiers of a few common makes, so decoded VINs look familiar.
_WMIS = ("1FT", "1G1", "2HG", "3VW", "JTD", "KMH", "WVW", "WBA", "VF1", "YV1", "ZFA", "SAL")
_MODEL_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"


class InvalidVinError(ValueError):
    """Raised when a string cannot be a VIN (wrong length or a letter VINs never use)."""


def check_digit(vin: str) -> str:
    """Return the check digit ("0"-"9" or "X") that position 9 of ``vin`` must hold.

    Raises InvalidVinError when ``vin`` is not 17 characters of the VIN alphabet.
    """
    vin = vin.upper()
    if len(vin) != 17 or any(c not in _TRANSLITERATION for c in vin):
        raise InvalidVinError(f"{vin!r} is not 17 characters of 0-9 and A-Z without I, O, Q")
    remainder = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True)) % 11
    return "X" if remainder == 10 else str(remainder)


def is_valid_vin(vin: str) -> bool:
    """Return True when ``vin`` has 17 valid characters and a correct check digit."""
    try:
        return check_digit(vin) == vin.upper()[8]
    except InvalidVinError:
        return False


def random_vin(rng: random.Random) -> str:
    """Return a plausible VIN with a correct check digit, drawn from ``rng``."""
    wmi = rng.choice(_WMIS)
    descriptor = "".join(rng.choice(_VIN_ALPHABET) for _ in range(5))
    year = rng.choice(_MODEL_YEAR_CODES[10:25])
    plant = rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
    serial = f"{rng.randrange(10**6):06d}"
    draft = f"{wmi}{descriptor}0{year}{plant}{serial}"
    return draft[:8] + check_digit(draft) + draft[9:]
