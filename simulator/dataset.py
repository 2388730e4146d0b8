"""Labelled drives for training and evaluating anomaly models (``fleetlink sim dataset``).

Each drive steps the vehicle and driver models directly (no pacing, no pty) and records the
features once a second while the engine runs. Drives differ in driver style, road type
(city, suburban, highway: cruise speeds and stop spacing), ambient temperature and the car's
own seed. A faulty drive turns one fault on at a labelled onset; physical faults go through
:class:`~fleetlink.simulator.wear.WearState` (so they also show over the ELM327 and the CAN
bus), sensor faults change the recorded value only:

- ``coolant_leak``: the radiator loses capacity; the coolant runs hotter under load.
- ``charging``: a failing alternator; the running voltage sags.
- ``misfire``: rough running; the rpm jitters.
- ``air_filter``: a clogged filter; less air (MAF, load) for the same throttle.
- ``stuck_sensor``: one sensor keeps its value from the onset on.
- ``noisy_sensor``: one sensor's reading gets noisy.

The file is one ``.npz``: ``rows`` (all drives' rows, float32), ``starts`` (each drive's
first row), and ``labels`` (JSON: the features and, per drive, its conditions and fault).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetlink.simulator.driver import Driver
from fleetlink.simulator.vehicle import Vehicle, VehicleState
from fleetlink.simulator.wear import WearState

FEATURES: tuple[str, ...] = (
    "Vehicle.Powertrain.CombustionEngine.Speed",
    "Vehicle.Speed",
    "Vehicle.OBD.EngineLoad",
    "Vehicle.OBD.ThrottlePosition",
    "Vehicle.Powertrain.CombustionEngine.MAF",
    "Vehicle.Powertrain.CombustionEngine.ECT",
    "Vehicle.LowVoltageBattery.CurrentVoltage",
)
FAULTS: tuple[str, ...] = (
    "coolant_leak",
    "charging",
    "misfire",
    "air_filter",
    "stuck_sensor",
    "noisy_sensor",
)
ROADS: dict[str, tuple[float, float, float]] = {
    # road: (cruise speed offset km/h, shortest and longest distance between stops in m)
    "city": (0.0, 250.0, 1500.0),
    "suburban": (15.0, 1000.0, 4000.0),
    "highway": (55.0, 8000.0, 25000.0),
}
STUCK_SENSORS = (
    "Vehicle.Speed",
    "Vehicle.Powertrain.CombustionEngine.MAF",
    "Vehicle.OBD.ThrottlePosition",
)
# Noise levels (one standard deviation per unit of severity) for the sensors that get noisy.
NOISY_SENSORS: dict[str, float] = {
    "Vehicle.Powertrain.CombustionEngine.ECT": 3.0,
    "Vehicle.LowVoltageBattery.CurrentVoltage": 0.35,
    "Vehicle.Powertrain.CombustionEngine.MAF": 4.0,
    "Vehicle.Speed": 5.0,
}
_STEP_S = 0.25
_RAMP_S = 120.0


def feature_row(s: VehicleState) -> list[float]:
    """Return the :data:`FEATURES` of state ``s`` in order."""
    return [
        s.rpm,
        s.speed_kmh,
        s.engine_load_pct,
        s.throttle_pct,
        s.maf_gs,
        s.coolant_temp_c,
        s.battery_v,
    ]


class RoadDriver(Driver):
    """A :class:`Driver` on a road type: faster cruising and fewer stops out of town."""

    def __init__(self, style: float, seed: int, road: str) -> None:
        self._road = ROADS[road]
        super().__init__(style, seed)

    def _pick_cruise_speed(self) -> float:
        return super()._pick_cruise_speed() + self._road[0]

    def _pick_light_distance(self) -> float:
        return self._rng.uniform(self._road[1], self._road[2])


@dataclass(frozen=True)
class DriveSpec:
    """One drive's conditions, and its fault (``None``: a normal drive)."""

    seed: int
    style: float
    road: str
    ambient_c: float
    duration_s: int
    fault: str | None = None
    onset_s: int | None = None
    severity: float = 0.0
    sensor: str | None = None


def plan_drives(normal: int, faulty_per_fault: int, duration_s: int, seed: int) -> list[DriveSpec]:
    """Return ``normal`` normal drives and ``faulty_per_fault`` drives of each fault, each
    ``duration_s`` long (give or take a quarter), all drawn from ``seed``."""
    rng = random.Random(seed)
    specs: list[DriveSpec] = []
    kinds: list[str | None] = [None] * normal + [f for f in FAULTS for _ in range(faulty_per_fault)]
    for kind in kinds:
        length = int(duration_s * rng.uniform(0.75, 1.25))
        base: dict[str, Any] = {
            "seed": rng.randrange(1 << 30),
            "style": round(rng.uniform(0.0, 1.0), 3),
            "road": rng.choice(list(ROADS)),
            "ambient_c": round(rng.uniform(-10.0, 35.0), 1),
            "duration_s": length,
        }
        if kind is None:
            specs.append(DriveSpec(**base))
            continue
        sensor = None
        if kind == "stuck_sensor":
            sensor = rng.choice(STUCK_SENSORS)
        elif kind == "noisy_sensor":
            sensor = rng.choice(list(NOISY_SENSORS))
        specs.append(
            DriveSpec(
                **base,
                fault=kind,
                onset_s=int(length * rng.uniform(0.3, 0.6)),
                severity=round(rng.uniform(0.5, 1.0), 3),
                sensor=sensor,
            )
        )
    return specs


def _wear_at(spec: DriveSpec, t_s: float) -> WearState:
    if spec.fault is None or spec.onset_s is None or t_s < spec.onset_s:
        return WearState()
    grown = min(1.0, (t_s - spec.onset_s) / _RAMP_S)  # faults grow over two minutes
    if spec.fault == "coolant_leak":
        # The radiator only shows a loss once most of its capacity is gone.
        return WearState(cooling_loss=grown * (0.92 + 0.07 * spec.severity))
    if spec.fault == "charging":
        return WearState(charging_loss_v=grown * 1.6 * spec.severity)
    if spec.fault == "misfire":
        return WearState(misfire=grown * spec.severity)
    if spec.fault == "air_filter":
        return WearState(air_restriction=grown * 0.7 * spec.severity)
    return WearState()


def simulate_drive(spec: DriveSpec) -> npt.NDArray[np.float32]:
    """Return the drive's rows (one a second, :data:`FEATURES` in order) with its fault."""
    vehicle = Vehicle(spec.seed, ambient_temp_c=spec.ambient_c, pending_dtcs=())
    driver = RoadDriver(spec.style, spec.seed + 1, spec.road)
    vehicle.set_ignition(True)
    rows: list[list[float]] = []
    steps_per_row = round(1.0 / _STEP_S)
    wear = WearState()
    state = vehicle.snapshot()
    for second in range(spec.duration_s):
        new_wear = _wear_at(spec, second)
        if new_wear != wear:
            vehicle.set_wear(new_wear)
            wear = new_wear
        for _ in range(steps_per_row):
            pedals = driver.step(_STEP_S, state)
            vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
            state = vehicle.step(_STEP_S)
        rows.append(feature_row(state))
    data = np.asarray(rows, dtype=np.float32)
    _sensor_fault(spec, data)
    return data


def _sensor_fault(spec: DriveSpec, data: npt.NDArray[np.float32]) -> None:
    if spec.sensor is None or spec.onset_s is None:
        return
    col = FEATURES.index(spec.sensor)
    onset = spec.onset_s
    if spec.fault == "stuck_sensor":
        data[onset:, col] = data[onset, col]
    elif spec.fault == "noisy_sensor":
        noise = np.random.default_rng(spec.seed).normal(
            0.0, NOISY_SENSORS[spec.sensor] * spec.severity, size=data.shape[0] - onset
        )
        data[onset:, col] = np.maximum(0.0, data[onset:, col] + noise)


@dataclass
class Dataset:
    """Drives' rows and labels (see the module docstring for the file)."""

    rows: npt.NDArray[np.float32]
    starts: npt.NDArray[np.int64]
    specs: list[DriveSpec]
    features: tuple[str, ...] = FEATURES

    def drive(self, i: int) -> npt.NDArray[np.float32]:
        """Return the rows of drive ``i``."""
        end = self.starts[i + 1] if i + 1 < len(self.starts) else self.rows.shape[0]
        return self.rows[self.starts[i] : end]

    def save(self, path: Path) -> None:
        """Write the dataset to ``path`` (``.npz``); return None."""
        labels = {"features": list(self.features), "drives": [asdict(s) for s in self.specs]}
        with path.open("wb") as f:
            np.savez_compressed(f, rows=self.rows, starts=self.starts, labels=json.dumps(labels))

    @classmethod
    def load(cls, path: Path) -> Dataset:
        """Return the dataset in ``path``.

        Raises:
            OSError: the file cannot be read.
            ValueError: it is not a dataset file.
        """
        with np.load(path, allow_pickle=False) as data:
            try:
                labels = json.loads(str(data["labels"]))
                return cls(
                    rows=data["rows"],
                    starts=data["starts"],
                    specs=[DriveSpec(**d) for d in labels["drives"]],
                    features=tuple(labels["features"]),
                )
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{path}: not a dataset written by fleetlink sim dataset") from exc


def generate(specs: list[DriveSpec]) -> Dataset:
    """Return the dataset of ``specs``' drives (deterministic: the same specs, the same rows)."""
    drives = [simulate_drive(spec) for spec in specs]
    starts = np.cumsum([0] + [d.shape[0] for d in drives[:-1]]).astype(np.int64)
    rows = np.concatenate(drives) if drives else np.zeros((0, len(FEATURES)), np.float32)
    return Dataset(rows=rows, starts=starts, specs=specs)
