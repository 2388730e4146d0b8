"""Which shipped profile fits a vehicle: its VIN (decoded offline) and its OBD protocol.

A profile's ``[match]`` rules all have to hold for it to fit; among those that fit, the one
with the most specific rules wins (a manufacturer code counts most, then make, model year
and protocol), and the fallback profile (no rules) fits any vehicle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vininfo import Vin
from vininfo.exceptions import VininfoException

from fleetlink.firmware_profiles.schema import Profile

_WEIGHTS = {"wmi": 8, "makes": 4, "years": 2, "protocols": 1}


@dataclass(frozen=True, slots=True)
class VehicleIdentity:
    """What the agent knows of a vehicle: its VIN (if it gave one), what the VIN says, and
    the OBD protocol (ELM327 number) it answered on."""

    vin: str | None = None
    protocol_id: str = ""
    wmi: str = ""
    make: str = ""
    model_years: list[int] = field(default_factory=list)


def identify(vin: str | None, protocol_id: str = "") -> VehicleIdentity:
    """Return the identity of a vehicle from its VIN (decoded offline with ``vininfo``) and
    protocol; a missing or undecodable VIN leaves make and years empty."""
    if not vin:
        return VehicleIdentity(None, protocol_id)
    try:
        decoded = Vin(vin)
        make = str(decoded.manufacturer or "")
        years = [int(y) for y in decoded.years or []]
    except (VininfoException, ValueError, KeyError):
        return VehicleIdentity(vin, protocol_id, vin[:3].upper())
    return VehicleIdentity(vin, protocol_id, vin[:3].upper(), make, sorted(years))


def score(profile: Profile, vehicle: VehicleIdentity) -> int | None:
    """Return how specifically ``profile`` fits ``vehicle`` (0 for the fallback), or None
    when one of its match rules does not hold."""
    rules = profile.match
    total = 0
    if rules.wmi:
        if vehicle.wmi not in rules.wmi:
            return None
        total += _WEIGHTS["wmi"]
    if rules.makes:
        if vehicle.make.casefold() not in {m.casefold() for m in rules.makes}:
            return None
        total += _WEIGHTS["makes"]
    if rules.years:
        first, last = rules.years
        if not any(first <= year <= last for year in vehicle.model_years):
            return None
        total += _WEIGHTS["years"]
    if rules.protocols:
        if vehicle.protocol_id not in rules.protocols:
            return None
        total += _WEIGHTS["protocols"]
    if rules.models:
        # the model is not in the VIN's decodable part; a model-only profile is chosen by name
        return None
    return total


def ranked_profiles(profiles: list[Profile], vehicle: VehicleIdentity) -> list[Profile]:
    """Return the profiles that fit ``vehicle``, most specific first (ties: the lowest id)."""
    fitting = [(s, p) for p in profiles if (s := score(p, vehicle)) is not None]
    fitting.sort(key=lambda pair: (-pair[0], pair[1].id))
    return [p for _, p in fitting]


def best_profile(profiles: list[Profile], vehicle: VehicleIdentity) -> Profile | None:
    """Return the profile that fits ``vehicle`` most specifically (ties: the lowest id), or
    None when none fits (no fallback profile among ``profiles``)."""
    ranked = ranked_profiles(profiles, vehicle)
    return ranked[0] if ranked else None
