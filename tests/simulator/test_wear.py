"""Injected wear: failures come with known days, and the data foretells the predictable ones."""

from __future__ import annotations

import statistics

import pytest

from fleetlink.simulator.bench.maintenance import report
from fleetlink.simulator.driver import Driver
from fleetlink.simulator.vehicle import Vehicle
from fleetlink.simulator.wear import WearState, WornVehicle, simulate_fleet

from .test_vehicle_model import drive


def test_the_same_seed_wears_the_same_way() -> None:
    assert simulate_fleet(3, 200, seed=5) == simulate_fleet(3, 200, seed=5)


def test_a_battery_failure_follows_a_falling_resting_voltage() -> None:
    fleet = simulate_fleet(60, 400, seed=11)
    before, elsewhere = [], []
    for days in fleet:
        fails = [d.day for d in days if "battery" in d.failures]
        for f in fails:
            before += [d.battery_low_v for d in days if f - 3 <= d.day < f]
        elsewhere += [d.battery_low_v for d in days if all(abs(d.day - f) > 60 for f in fails)]
    assert before, "no battery failed: the test fleet is too small"
    assert statistics.fmean(before) < 12.1 < 12.5 < statistics.fmean(elsewhere)


def test_overrunning_the_service_interval_is_serviced_eventually() -> None:
    vehicle = WornVehicle(seed=3)
    days = [vehicle.day(d) for d in range(800)]
    assert any(d.serviced for d in days)
    assert max(d.service_used for d in days) < 1.5


def test_worn_parts_read_worn_over_the_vehicle_model() -> None:
    states = {}
    for wear in (WearState(), WearState(battery_offset_v=-0.6, cooling_loss=0.9)):
        vehicle = Vehicle(seed=4, ambient_temp_c=25.0)
        vehicle.set_wear(wear)
        vehicle.set_ignition(True)
        running = drive(vehicle, Driver(0.8, seed=4), 900.0)
        vehicle.set_ignition(False)
        vehicle.step(60.0)
        states[wear.cooling_loss] = (max(s.coolant_temp_c for s in running), vehicle.snapshot())
    healthy_coolant, healthy = states[0.0]
    worn_coolant, worn = states[0.9]
    assert worn.battery_v == pytest.approx(healthy.battery_v - 0.6, abs=0.05)
    assert worn_coolant > healthy_coolant + 3.0


def test_the_backtest_prints_model_and_interval_schedule_side_by_side() -> None:
    text = report(vehicles=40, days=200, seed=2, train_seed=1, step=5, write_model=None)
    lines = text.splitlines()
    row_30 = next(line for line in lines if line.strip().startswith("30 d"))
    brier_model, brier_interval, brier_base = map(float, row_30.split()[-3:])
    assert brier_model < brier_base and brier_interval <= brier_base + 0.01
    assert any(line.startswith("interval") for line in lines)


def test_sim_wear_prints_each_vehicles_failures_with_their_days() -> None:
    from typer.testing import CliRunner

    from fleetlink.simulator.cli import app

    result = CliRunner().invoke(app, ["wear", "--vehicles", "30", "--days", "300", "--seed", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 30
    assert any("@day" in line for line in lines)
