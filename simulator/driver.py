"""A driver who cruises, stops at traffic lights and pulls away again, calmly or aggressively."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from fleetlink.simulator.vehicle import VehicleState


class Phase(Enum):
    """What the driver is doing right now."""

    WAITING = "waiting"
    DRIVING = "driving"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class Pedals:
    """Pedal positions the driver asks for, each 0-100 %."""

    accelerator_pct: float
    brake_pct: float


# Brake force at 100 % pedal is 0.8 g, see vehicle.py; the driver converts decelerations with it.
_FULL_BRAKE_MPS2 = 0.8 * 9.81


class Driver:
    """A driver with a ``style`` from 0 (calm) to 1 (aggressive); randomness comes from ``seed``.

    Aggressive drivers cruise faster, accelerate and brake harder (beyond common harsh-event
    thresholds of about 0.3-0.4 g) and idle for more varied, sometimes long, times.
    Raises ValueError when ``style`` is outside [0, 1].
    """

    def __init__(self, style: float = 0.3, seed: int = 0) -> None:
        if not 0.0 <= style <= 1.0:
            raise ValueError(f"style must be within [0, 1], got {style}")
        self.style = style
        self._rng = random.Random(seed)
        self.phase = Phase.WAITING
        self._wait_s = self._rng.uniform(1.0, 4.0)
        self._target_kmh = self._pick_cruise_speed()
        self._to_light_m = self._pick_light_distance()
        self._retarget_s = self._rng.uniform(10.0, 30.0)

    def _pick_cruise_speed(self) -> float:
        base = 38.0 + 42.0 * self.style
        return max(20.0, self._rng.gauss(base, 6.0 + 6.0 * self.style))

    def _pick_light_distance(self) -> float:
        return self._rng.uniform(250.0, 1500.0)

    def _pick_wait(self) -> float:
        if self._rng.random() < 0.1 * self.style:
            return self._rng.uniform(120.0, 420.0)
        spread = 15.0 + 60.0 * self.style
        return self._rng.uniform(5.0, 5.0 + spread)

    @property
    def _max_accelerator_pct(self) -> float:
        return 35.0 + 60.0 * self.style

    @property
    def _braking_mps2(self) -> float:
        return 1.5 + 3.5 * self.style

    def step(self, dt_s: float, state: VehicleState) -> Pedals:
        """Advance the driver's plan by ``dt_s`` seconds given the vehicle ``state``.

        Returns the pedal positions to apply; with the engine off, it holds the brake.
        """
        if not state.engine_running:
            return Pedals(0.0, 60.0 if state.speed_kmh > 0 else 10.0)
        v_mps = state.speed_kmh / 3.6
        self._to_light_m -= v_mps * dt_s

        if self.phase is Phase.WAITING:
            self._wait_s -= dt_s
            if self._wait_s <= 0:
                self.phase = Phase.DRIVING
                self._target_kmh = self._pick_cruise_speed()
                self._to_light_m = self._pick_light_distance()
            return Pedals(0.0, 35.0)

        if self.phase is Phase.DRIVING:
            self._retarget_s -= dt_s
            if self._retarget_s <= 0:
                self._retarget_s = self._rng.uniform(10.0, 30.0)
                self._target_kmh = self._pick_cruise_speed()
            stopping_m = v_mps**2 / (2.0 * self._braking_mps2) + 3.0
            if self._to_light_m <= stopping_m:
                self.phase = Phase.STOPPING
            else:
                error_kmh = self._target_kmh - state.speed_kmh
                gain = 4.0 + 8.0 * self.style
                hold_pct = 6.0 + 0.12 * state.speed_kmh
                pedal = min(self._max_accelerator_pct, max(0.0, hold_pct + gain * error_kmh))
                brake = min(30.0, -2.0 * error_kmh) if error_kmh < -8.0 else 0.0
                return Pedals(pedal if brake == 0.0 else 0.0, brake)

        # STOPPING: brake just hard enough to stop at the light.
        if state.speed_kmh < 0.5:
            self.phase = Phase.WAITING
            self._wait_s = self._pick_wait()
            return Pedals(0.0, 35.0)
        needed_mps2 = v_mps**2 / (2.0 * max(self._to_light_m, 1.0))
        decel = min(max(needed_mps2, 0.5 * self._braking_mps2), 1.3 * self._braking_mps2)
        return Pedals(0.0, min(100.0, 100.0 * decel / _FULL_BRAKE_MPS2))
