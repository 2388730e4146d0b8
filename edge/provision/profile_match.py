"""Which shipped firmware profile fits a vehicle, from its decoded VIN.

A simple score: every criterion a profile names (WMI, make, model, model years) must hold;
the profile naming the most criteria wins; a profile with an empty match is the fallback.
"""

from __future__ import annotations

from fleetlink.firmware_profiles import load_profile, profile_ids
from fleetlink.firmware_profiles.schema import Profile
from fleetlink.shared.vin import VinInfo


def _score(profile: Profile, vin: VinInfo | None) -> int | None:
    match = profile.match
    if match.is_fallback:
        return 0
    if vin is None:
        return None
    checks = [
        (bool(match.wmi), vin.wmi in match.wmi),
        (bool(match.makes), (vin.make or "").lower() in {m.lower() for m in match.makes}),
        (bool(match.models), (vin.model or "").lower() in {m.lower() for m in match.models}),
        (
            match.years is not None,
            match.years is not None
            and vin.model_year is not None
            and match.years[0] <= vin.model_year <= match.years[1],
        ),
    ]
    if not all(ok for named, ok in checks if named):
        return None
    return sum(1 for named, _ in checks if named)


def suggest_profiles(vin: VinInfo | None) -> list[str]:
    """Return the ids of the shipped profiles that fit, best first (fallbacks last)."""
    scored = []
    for profile_id in profile_ids():
        score = _score(load_profile(profile_id), vin)
        if score is not None:
            scored.append((-score, profile_id))
    return [profile_id for _, profile_id in sorted(scored)]
