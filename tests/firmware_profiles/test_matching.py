"""Choosing the profile that fits a vehicle: VIN decoded offline, protocol, fallback."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from fleetlink.firmware_profiles import Profile, load_profile
from fleetlink.firmware_profiles.matching import best_profile, identify, score


def profile(profile_id: str, **match: Any) -> Profile:
    return Profile.model_validate(
        {
            "format": 1,
            "id": profile_id,
            "name": profile_id,
            "version": "1.0.0",
            "match": match,
            "obd": {"pids": [{"command": "RPM", "rate_hz": 2, "priority": "high"}]},
        }
    )


def test_the_vin_is_decoded_offline_into_make_and_model_years() -> None:
    vehicle = identify("1G1JC5444R7252367", "6")
    assert vehicle.wmi == "1G1" and vehicle.make == "Chevrolet"
    assert 1994 in vehicle.model_years and vehicle.protocol_id == "6"
    assert identify(None, "3").make == ""


def test_the_most_specific_fitting_profile_wins_over_the_fallback() -> None:
    vehicle = identify("1G1JC5444R7252367", "6")
    fallback = load_profile("generic-obd2")
    by_make = profile("chevy", makes=["chevrolet"])
    by_wmi = profile("chevy-1g1", wmi=["1G1"], protocols=["ISO 15765-4 (CAN 11/500)"])
    other = profile("toyota", wmi=["JTD"])
    chosen = best_profile([fallback, by_make, other, by_wmi], vehicle)
    assert chosen is not None and chosen.id == "chevy-1g1"
    assert best_profile([fallback, other], vehicle) == fallback
    assert score(other, vehicle) is None


def test_a_protocol_rule_excludes_vehicles_on_another_bus() -> None:
    kline = profile("kline", protocols=["3"])
    assert score(kline, identify("1G1JC5444R7252367", "6")) is None
    assert score(kline, identify("1G1JC5444R7252367", "3")) == 1


def test_a_protocol_that_is_no_obd_protocol_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="not an OBD protocol"):
        profile("bad", protocols=["CAN 500"])


def test_a_pid_with_its_own_rate_is_checked_against_the_catalog() -> None:
    with pytest.raises(ValidationError, match="not an OBD command in the signal catalog"):
        Profile.model_validate(
            {
                "format": 1,
                "id": "x",
                "name": "x",
                "version": "1.0.0",
                "obd": {"pids": [{"command": "NOT_A_PID", "rate_hz": 1}]},
            }
        )
