"""Driver styles: an aggressive driver drives faster and accelerates and brakes harder."""

from __future__ import annotations

import itertools

import pytest

from fleetlink.simulator.driver import Driver
from fleetlink.simulator.vehicle import Vehicle, VehicleState


def trip(style: float, seed: int, seconds: float = 1200.0) -> list[VehicleState]:
    vehicle = Vehicle(seed=seed)
    vehicle.set_ignition(True)
    driver = Driver(style, seed=seed)
    states = []
    for _ in range(round(seconds / 0.1)):
        pedals = driver.step(0.1, vehicle.snapshot())
        vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
        states.append(vehicle.step(0.1))
    return states


@pytest.mark.parametrize("seed", [1, 2])
def test_aggressive_driver_is_faster_and_harsher_than_calm_driver(seed: int) -> None:
    calm, aggressive = trip(0.0, seed), trip(1.0, seed)
    assert max(s.speed_kmh for s in aggressive) > max(s.speed_kmh for s in calm) + 15
    assert max(s.acceleration_mps2 for s in aggressive) > 3.0  # harsh acceleration, > 0.3 g
    assert max(s.acceleration_mps2 for s in calm) < 2.0
    assert min(s.acceleration_mps2 for s in aggressive) < -3.5  # harsh braking
    assert min(s.acceleration_mps2 for s in calm) > -3.0


def test_driver_stops_at_lights_and_pulls_away_again() -> None:
    states = trip(0.3, seed=5, seconds=600.0)
    moving = [s.speed_kmh > 1 for s in states]
    starts = sum(1 for a, b in itertools.pairwise(moving) if not a and b)
    assert starts >= 3


def test_with_the_ignition_off_the_car_stays_put() -> None:
    vehicle = Vehicle(seed=1)
    driver = Driver(1.0, seed=1)
    for _ in range(100):
        pedals = driver.step(0.1, vehicle.snapshot())
        vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
        state = vehicle.step(0.1)
    assert state.speed_kmh == 0 and state.rpm == 0


def test_style_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="style"):
        Driver(1.5)
