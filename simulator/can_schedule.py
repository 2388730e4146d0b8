"""A vehicle's periodic CAN traffic: DBC messages encoded by cantools from the physics model.

Each vehicle kind has a DBC file (shipped beside the firmware profiles) and a function from
:class:`VehicleState` to every message's signal values. :class:`CanSchedule` sends each
message at its DBC cycle time (``GenMsgCycleTime``); the car's bus also carries messages
from modules its DBC does not describe, as real buses do, which a reader must ignore and
count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import can
from cantools.database import Database

from fleetlink.firmware_profiles.can import load_dbc
from fleetlink.simulator.vehicle import VehicleState

VehicleKind = Literal["car", "truck"]

_DBC_DIR = Path(__file__).resolve().parent.parent / "firmware_profiles" / "dbc"
DBC_FILES: dict[VehicleKind, Path] = {
    "car": _DBC_DIR / "fleetlink_car.dbc",
    "truck": _DBC_DIR / "fleetlink_truck_j1939.dbc",
}
# Modules the car's DBC does not describe (body, comfort, infotainment): id and period.
UNDESCRIBED_CAR_IDS: tuple[tuple[int, float], ...] = tuple((0x300 + i, 0.01) for i in range(10))
_TRACK_M = 1.55
# A sender that stalls briefly catches up (frames queue in a real controller too); past this
# it skips ahead.
_MAX_LAG_S = 0.05  # the car's track width, for wheel speeds in a turn


Values = dict[str, dict[str, float]]


def car_values(s: VehicleState, yaw_rate_dps: float, steering_deg: float) -> Values:
    """Return every car DBC message's signal values for state ``s``."""
    turn = yaw_rate_dps * math.pi / 180.0 * _TRACK_M / 2.0 * 3.6  # km/h faster on the outside
    return {
        "ENGINE_STATUS": {
            "EngineSpeed": s.rpm,
            "AcceleratorPedal": s.accelerator_pct,
            "EngineTorque": s.engine_torque_pct,
            "EngineRunning": 1.0 if s.engine_running else 0.0,
            "Counter": 0.0,
        },
        "VEHICLE_DYNAMICS": {
            "LongitudinalAccel": s.acceleration_mps2,
            "LateralAccel": yaw_rate_dps * math.pi / 180.0 * s.speed_kmh / 3.6,
            "YawRate": yaw_rate_dps,
            "Counter": 0.0,
        },
        "STEERING": {"SteeringAngle": steering_deg, "SteeringRate": 0.0, "Counter": 0.0},
        "WHEEL_SPEEDS": {
            "WheelSpeedFL": max(0.0, s.speed_kmh - turn),
            "WheelSpeedFR": max(0.0, s.speed_kmh + turn),
            "WheelSpeedRL": max(0.0, s.speed_kmh - turn),
            "WheelSpeedRR": max(0.0, s.speed_kmh + turn),
        },
        "BRAKE": {"BrakePedal": s.brake_pct, "BrakeSwitch": 1.0 if s.brake_pct > 1 else 0.0},
        "VEHICLE_SPEED": {"VehicleSpeed": s.speed_kmh},
        "TRANSMISSION": {"Gear": float(s.gear), "GearLever": 3.0 if s.engine_running else 0.0},
        "ENGINE_TEMPS": {
            "CoolantTemp": s.coolant_temp_c,
            "OilTemp": s.oil_temp_c,
            "IntakeTemp": s.intake_temp_c,
        },
        "FUEL": {"FuelLevel": s.fuel_level_pct, "FuelRate": s.fuel_rate_lph},
        "BATTERY": {"BatteryVoltage": s.battery_v},
        "ODOMETER": {"Odometer": s.odometer_km},
    }


def truck_values(s: VehicleState, dm1_spn: int, dm1_fmi: int) -> Values:
    """Return every truck (J1939) DBC message's signal values for state ``s``."""
    torque = s.engine_torque_pct
    return {
        "EEC1": {
            "EngineTorqueMode": 0.0,
            "DriversDemandEnginePercentTorque": torque,
            "ActualEnginePercentTorque": torque,
            "EngineSpeed": s.rpm,
            "SourceAddressOfControllingDevice": 0.0,
        },
        "EEC2": {
            "AcceleratorPedalPosition1": s.accelerator_pct,
            "EnginePercentLoadAtCurrentSpeed": s.engine_load_pct,
        },
        "CCVS1": {
            "ParkingBrakeSwitch": 1.0 if s.speed_kmh < 0.1 and not s.engine_running else 0.0,
            "WheelBasedVehicleSpeed": s.speed_kmh,
            "CruiseControlActive": 0.0,
            "BrakeSwitch": 1.0 if s.brake_pct > 1 else 0.0,
            "ClutchSwitch": 0.0,
        },
        "ET1": {
            "EngineCoolantTemperature": s.coolant_temp_c,
            "EngineFuelTemperature1": s.intake_temp_c,
            "EngineOilTemperature1": s.oil_temp_c,
        },
        "LFE1": {
            "EngineFuelRate": s.fuel_rate_lph,
            "EngineInstantaneousFuelEconomy": 0.0,
            "EngineThrottleValve1Position1": s.throttle_pct,
        },
        "VD": {"TripDistance": 0.0, "TotalVehicleDistance": s.odometer_km},
        "HRVD": {
            "HighResolutionTotalVehicleDistance": s.odometer_km * 1000.0,
            "HighResolutionTripDistance": 0.0,
        },
        "DM1": {
            "ProtectLampStatus": 0.0,
            "AmberWarningLampStatus": 1.0 if dm1_spn else 0.0,
            "RedStopLampStatus": 0.0,
            "MalfunctionIndicatorLampStatus": 1.0 if s.mil_on or dm1_spn else 0.0,
            "DTC1_SPN_Low": float(dm1_spn & 0xFFFF),
            "DTC1_FMI": float(dm1_fmi),
            "DTC1_SPN_High": float(dm1_spn >> 16),
            "DTC1_ConversionMethod": 0.0,
            "DTC1_OccurrenceCount": 1.0 if dm1_spn else 0.0,
        },
    }


@dataclass
class _Periodic:
    frame_id: int
    extended: bool
    period_s: float
    next_due_s: float
    encode: Callable[[Values], bytes]


class CanSchedule:
    """The periodic frames of one vehicle kind, sent at their cycle times.

    ``rate_factor`` multiplies every message's rate (a benchmark fills a bus with it).
    ``dm1_fault`` is the (SPN, FMI) the truck reports as active, (0, 0) for none.
    """

    def __init__(self, kind: VehicleKind, *, rate_factor: float = 1.0) -> None:
        if rate_factor <= 0:
            raise ValueError(f"rate_factor must be > 0, got {rate_factor}")
        self.kind = kind
        self.database: Database = load_dbc(DBC_FILES[kind])
        self.dm1_fault = (0, 0)
        self._counter = 0
        self._periodic: list[_Periodic] = []
        for message in self.database.messages:
            if not message.cycle_time:
                continue
            self._periodic.append(
                _Periodic(
                    message.frame_id,
                    message.is_extended_frame,
                    message.cycle_time / 1000.0 / rate_factor,
                    0.0,
                    self._encoder(message.name),
                )
            )
        if kind == "car":
            for frame_id, period_s in UNDESCRIBED_CAR_IDS:
                self._periodic.append(
                    _Periodic(frame_id, False, period_s / rate_factor, 0.0, self._opaque)
                )

    def _encoder(self, name: str) -> Callable[[Values], bytes]:
        message = self.database.get_message_by_name(name)

        def encode(values: Values) -> bytes:
            data: bytes = message.encode(values[name], scaling=True, strict=False)
            return data

        return encode

    def _opaque(self, _: Values) -> bytes:
        self._counter = (self._counter + 1) & 0xFF
        return bytes((self._counter, 0x5A, 0, 0, 0, 0, 0, 0))

    @property
    def frames_per_s(self) -> float:
        """Return how many frames the schedule sends per second."""
        return sum(1.0 / p.period_s for p in self._periodic)

    def values(self, state: VehicleState) -> Values:
        """Return every DBC message's signal values for ``state``."""
        if self.kind == "truck":
            return truck_values(state, *self.dm1_fault)
        yaw = (state.heading_deg * 7.0) % 30.0 - 15.0 if state.speed_kmh > 1 else 0.0
        return car_values(state, yaw * 0.2, yaw * 8.0)

    def due(self, now_s: float, state: VehicleState) -> list[can.Message]:
        """Return the frames due at ``now_s`` (monotonic seconds), oldest due first.

        A schedule that fell behind catches up, unless it fell more than 50 ms behind: then
        each late message is sent once and the schedule starts again from ``now_s``.
        """
        values: Values | None = None
        frames = []
        for periodic in self._periodic:
            if periodic.next_due_s > now_s:
                continue
            if values is None:
                values = self.values(state)
            periodic.next_due_s += periodic.period_s
            if periodic.next_due_s < now_s - _MAX_LAG_S:
                periodic.next_due_s = now_s  # long stalled: skip ahead rather than burst
            frames.append(
                can.Message(
                    arbitration_id=periodic.frame_id,
                    is_extended_id=periodic.extended,
                    data=periodic.encode(values),
                    timestamp=now_s,
                )
            )
        return frames
