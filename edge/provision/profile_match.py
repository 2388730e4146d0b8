"""Which shipped firmware profiles fit a vehicle, from its decoded VIN: the agent's own
matching (:mod:`fleetlink.firmware_profiles.matching`) over the profiles it can poll."""

from __future__ import annotations

from fleetlink.firmware_profiles import load_profile, profile_ids
from fleetlink.firmware_profiles.matching import VehicleIdentity, ranked_profiles
from fleetlink.shared.vin import VinInfo


def suggest_profiles(vin: VinInfo | None) -> list[str]:
    """Return the ids of the shipped profiles with an ``[obd]`` section (what ``obd.profile``
    may name) that fit, best first; the fallback fits any vehicle and comes last."""
    vehicle = VehicleIdentity()
    if vin is not None:
        years = [vin.model_year] if vin.model_year is not None else []
        vehicle = VehicleIdentity(wmi=vin.wmi, make=vin.make or "", model_years=years)
    pollable = [p for p in (load_profile(i) for i in profile_ids()) if p.obd is not None]
    return [p.id for p in ranked_profiles(pollable, vehicle)]
