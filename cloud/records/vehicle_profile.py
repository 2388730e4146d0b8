"""A vehicle profile's fields: status, fuel type, plate, tags, and what its VIN tells offline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fleetlink.cloud.records.plates import normalize_plate
from fleetlink.shared.vin import decode_vin, normalize_vin

VehicleStatus = Literal["active", "in_maintenance", "retired"]
FuelType = Literal["petrol", "diesel", "electric", "hybrid", "lpg", "cng", "hydrogen", "other"]
MAX_TAGS = 50
_TAG = re.compile(r"^[\w][\w .:/-]{0,62}$")


def check_plate(plate: str) -> str:
    """Return the plate normalised; raise ValueError saying why it is not a plate."""
    return normalize_plate(plate)


def check_tags(tags: list[str]) -> list[str]:
    """Return the tags trimmed and without duplicates; raise ValueError for a bad one."""
    seen: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not _TAG.match(tag):
            raise ValueError(f"tag {tag!r}: 1-63 letters, digits, spaces and _ . : / -")
        if tag not in seen:
            seen.append(tag)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return seen


def check_vin(vin: str) -> str:
    """Return the VIN normalised and checked; raise ValueError saying what is wrong."""
    return normalize_vin(vin)


@dataclass(frozen=True, slots=True)
class VinProfile:
    vin: str
    make: str | None
    model: str | None
    year: int | None


def vin_profile(vin: str) -> VinProfile:
    """Return what the VIN tells of the vehicle, decoded offline (make, model, model year)."""
    vin = normalize_vin(vin)
    info = decode_vin(vin)
    return VinProfile(vin, info.make, info.model, info.model_year)
