"""The validators of the fleet's records, driven by hypothesis: VINs, plates, the personal-field
cipher and CSV files never fail but with their own clear error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlink.cloud.api.imports import DRIVER_COLUMNS, VEHICLE_COLUMNS, read_csv
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.records.field_crypto import (
    FieldCipher,
    FieldCryptoError,
    generate_key_ring_entry,
)
from fleetlink.cloud.records.plates import PlateError, normalize_plate
from fleetlink.shared.vin import VinError, check_digit, decode_vin, normalize_vin

VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
vins = st.text(alphabet=VIN_CHARS, min_size=17, max_size=17)


@pytest.mark.parametrize(
    ("vin", "make", "year"),
    [("1HGCM82633A004352", "Honda", 2003), ("JH4KA7561PC008269", "Acura", 2023)],
)
def test_real_vins_decode_offline_to_make_and_model_year(vin: str, make: str, year: int) -> None:
    info = decode_vin(vin.lower())
    assert (info.make, info.model_year, info.wmi) == (make, year, vin[:3])


def test_a_mistyped_north_american_vin_fails_its_check_digit() -> None:
    with pytest.raises(VinError, match="check digit"):
        normalize_vin("1HGCM82643A004352")
    assert normalize_vin("WVWZZZ1JZXW000001") == "WVWZZZ1JZXW000001"  # no check digit in Europe
    with pytest.raises(VinError, match="I, O and Q"):
        normalize_vin("1HGCM82633A00435O")


@given(vins, st.integers(0, 16), st.sampled_from(VIN_CHARS))
def test_a_north_american_vin_with_its_check_digit_passes_and_most_typos_do_not(
    vin: str, position: int, typo: str
) -> None:
    vin = "1" + vin[1:]
    vin = vin[:8] + check_digit(vin) + vin[9:]
    assert normalize_vin(vin) == vin
    changed = vin[:position] + typo + vin[position + 1 :]
    if changed != vin and position not in (0, 8):
        changed_ok = changed[8] == check_digit(changed)
        try:
            normalize_vin(changed)
            assert changed_ok
        except VinError:
            assert not changed_ok


@given(st.text(max_size=30))
def test_any_text_is_a_vin_or_a_vin_error(text: str) -> None:
    try:
        assert len(normalize_vin(text)) == 17
    except VinError as exc:
        assert str(exc)


@given(st.text(max_size=30))
def test_plates_normalise_idempotently_or_say_why_not(text: str) -> None:
    try:
        plate = normalize_plate(text)
    except PlateError as exc:
        assert str(exc)
    else:
        assert normalize_plate(plate) == plate and 1 <= len(plate) <= 15


def test_plates_compare_equal_whatever_the_spacing_and_dashes() -> None:
    assert normalize_plate(" b\u2013ab  123 ") == normalize_plate("B-AB 123") == "B-AB 123"


@given(st.text(max_size=200), st.text(min_size=1, max_size=40))
def test_personal_fields_round_trip_and_fail_in_another_context(plain: str, context: str) -> None:
    cipher = FieldCipher.from_env_value(generate_key_ring_entry("k1"))
    token = cipher.encrypt(plain, context)
    assert cipher.decrypt(token, context) == plain
    assert len(plain) < 4 or plain not in token
    with pytest.raises(FieldCryptoError):
        cipher.decrypt(token, context + "x")


def test_rotation_keeps_old_tokens_readable_and_marks_them() -> None:
    old = generate_key_ring_entry("old")
    token = FieldCipher.from_env_value(old).encrypt("L-1", "c")
    ring = FieldCipher.from_env_value(f"{generate_key_ring_entry('new')},{old}")
    assert ring.decrypt(token, "c") == "L-1" and ring.needs_rotation(token)
    assert not ring.needs_rotation(ring.encrypt("L-1", "c"))
    with pytest.raises(FieldCryptoError, match="not in the key ring"):
        FieldCipher.from_env_value(generate_key_ring_entry("other")).decrypt(token, "c")


@pytest.mark.parametrize(
    ("ring", "message"),
    [("", "empty"), ("k1", "id:base64key"), ("k1:!!!", "not base64"), ("k1:AAAA", "needs 32")],
)
def test_a_bad_key_ring_is_refused_without_showing_keys(ring: str, message: str) -> None:
    with pytest.raises(FieldCryptoError, match=message):
        FieldCipher.from_env_value(ring)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_text_reads_as_rows_or_one_clear_refusal(text: str) -> None:
    for allowed, custom in ((VEHICLE_COLUMNS, True), (DRIVER_COLUMNS, False)):
        try:
            rows = read_csv(text, allowed, custom)
        except ProblemError as exc:
            assert exc.status == 422 and exc.detail
        else:
            assert all(set(cells) <= allowed or custom for _, cells in rows)
