"""The vehicle model: physically plausible, mutually consistent, deterministic."""

from __future__ import annotations

import math

import pytest

from fleetlink.simulator.driver import Driver
from fleetlink.simulator.route import Route
from fleetlink.simulator.vehicle import Vehicle, VehicleState, rpm_per_kmh
from fleetlink.simulator.vin import InvalidVinError, check_digit, is_valid_vin


def drive(vehicle: Vehicle, driver: Driver, seconds: float) -> list[VehicleState]:
    states = []
    for _ in range(round(seconds / 0.1)):
        pedals = driver.step(0.1, vehicle.snapshot())
        vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
        states.append(vehicle.step(0.1))
    return states


@pytest.fixture(scope="module")
def trip() -> list[VehicleState]:
    vehicle = Vehicle(seed=7, ambient_temp_c=12.0)
    vehicle.set_ignition(True)
    return drive(vehicle, Driver(0.5, seed=7), 900.0)


def test_same_seed_drives_the_same_trip() -> None:
    runs = []
    for _ in range(2):
        vehicle = Vehicle(seed=3)
        vehicle.set_ignition(True)
        runs.append(drive(vehicle, Driver(0.6, seed=3), 120.0)[-1])
    assert runs[0] == runs[1]


def test_rpm_follows_speed_and_gear_once_the_converter_locks(trip: list[VehicleState]) -> None:
    # A second after the last gear change, the rpm lag has settled.
    cruising = [
        s
        for i, s in enumerate(trip)
        if s.speed_kmh > 30
        and abs(s.acceleration_mps2) < 0.3
        and all(p.gear == s.gear for p in trip[i - 10 : i])
    ]
    assert len(cruising) > 100
    for s in cruising:
        assert s.rpm == pytest.approx(s.speed_kmh * rpm_per_kmh(s.gear), rel=0.08, abs=40)


def test_maf_load_and_fuel_rate_agree_with_rpm_and_manifold_pressure(
    trip: list[VehicleState],
) -> None:
    for s in trip[50:]:
        density_g_per_l = s.intake_pressure_kpa * 1000 / (287.05 * (s.intake_temp_c + 273.15))
        expected_maf = s.rpm / 120 * 2.0 * 0.85 * density_g_per_l
        assert s.maf_gs == pytest.approx(expected_maf, rel=0.05)
        assert 0 <= s.engine_load_pct <= 100
        if s.fuel_rate_lph > 0:
            assert s.fuel_rate_lph == pytest.approx(
                s.maf_gs / (14.7 * s.equivalence_ratio) * 3600 / 745, rel=0.01
            )


def test_idle_values_are_those_of_a_real_warm_engine(trip: list[VehicleState]) -> None:
    idling = [s for s in trip[3000:] if s.speed_kmh == 0 and s.coolant_temp_c > 60]
    assert idling
    for s in idling[-20:]:
        assert 650 < s.rpm < 1000
        assert 2.0 < s.maf_gs < 6.0
        assert 0.5 < s.fuel_rate_lph < 2.0
        assert 13.8 < s.battery_v < 14.4


def test_coolant_warms_from_ambient_to_the_thermostat_and_no_further(
    trip: list[VehicleState],
) -> None:
    assert trip[0].coolant_temp_c == pytest.approx(12.0, abs=0.5)
    assert max(s.coolant_temp_c for s in trip) < 96
    assert trip[-1].coolant_temp_c > 85


def test_driving_burns_fuel_and_adds_odometer_and_engine_hours(trip: list[VehicleState]) -> None:
    first, last = trip[0], trip[-1]
    assert last.fuel_level_pct < first.fuel_level_pct
    assert 2.0 < last.odometer_km - first.odometer_km < 20.0
    assert last.engine_hours - first.engine_hours == pytest.approx(900 / 3600, rel=0.01)
    litres = (first.fuel_level_pct - last.fuel_level_pct) / 100 * 55
    per_100_km = litres / (last.odometer_km - first.odometer_km) * 100
    assert 4.0 < per_100_km < 16.0


def test_gps_moves_along_the_route_by_the_distance_travelled(trip: list[VehicleState]) -> None:
    a, b = trip[1000], trip[1010]
    moved_m = (b.odometer_km - a.odometer_km) * 1000
    dy = (b.latitude - a.latitude) * 111_195
    dx = (b.longitude - a.longitude) * 111_195 * math.cos(math.radians(a.latitude))
    assert math.hypot(dx, dy) == pytest.approx(moved_m, rel=0.05, abs=1.0)
    assert 52.35 < b.latitude < 52.38 and 4.87 < b.longitude < 4.92


def test_route_position_wraps_around_the_loop() -> None:
    route = Route()
    assert route.position_at(100.0) == route.position_at(route.length_m + 100.0)


def test_battery_rests_near_12_4_volts_with_the_engine_off() -> None:
    vehicle = Vehicle(seed=1)
    vehicle.set_ignition(True)
    vehicle.step(10.0)
    vehicle.set_ignition(False)
    for _ in range(400):
        state = vehicle.step(10.0)
    assert state.rpm == 0 and not state.engine_running
    assert state.battery_v == pytest.approx(12.4, abs=0.05)


def test_generated_vins_carry_a_correct_check_digit() -> None:
    for seed in range(50):
        vin = Vehicle(seed=seed).vin
        assert len(vin) == 17 and is_valid_vin(vin)
        assert vin[8] == check_digit(vin)


def test_a_vin_with_a_wrong_check_digit_is_refused() -> None:
    assert is_valid_vin("1M8GDM9AXKP042788")
    with pytest.raises(InvalidVinError):
        Vehicle(vin="1M8GDM9A1KP042788")


def test_clearing_codes_keeps_permanent_ones_and_resets_counters() -> None:
    vehicle = Vehicle(seed=2, stored_dtcs=("P0301",), pending_dtcs=("P0420",))
    vehicle.clear_dtcs()
    s = vehicle.snapshot()
    assert s.stored_dtcs == () and s.pending_dtcs == ()
    assert s.permanent_dtcs == ("P0301",)
    assert s.distance_since_clear_km == 0 and s.warmups_since_clear == 0
    assert not s.mil_on


def test_a_pending_code_matures_into_a_stored_code_after_some_driving() -> None:
    vehicle = Vehicle(seed=2, pending_dtcs=("P0171",))
    vehicle.set_ignition(True)
    drive(vehicle, Driver(0.5, seed=2), 900.0)
    s = vehicle.snapshot()
    assert "P0171" in s.stored_dtcs and s.mil_on


def test_injected_overheat_heats_a_running_engine_and_the_repair_cools_it() -> None:
    from fleetlink.simulator.vehicle import Vehicle

    vehicle = Vehicle(7)
    vehicle.set_ignition(True)
    for _ in range(300):
        normal = vehicle.step(0.1)
    assert normal.coolant_temp_c < 100.0
    vehicle.inject_overheat(15.0)
    for _ in range(200):
        hot = vehicle.step(0.1)
    assert 110.0 < hot.coolant_temp_c < 120.0  # thermostat + 15 / 0.6
    vehicle.inject_overheat(0.0)
    for _ in range(100):
        repaired = vehicle.step(0.1)
    assert repaired.coolant_temp_c < 100.0
    with pytest.raises(ValueError, match="heat_c_per_s"):
        vehicle.inject_overheat(-1.0)
