"""The signal catalog: every signal Fleetlink carries, with its canonical name, unit and wire id.

Names follow COVESA VSS 6.0 where the standard tree has the signal
(``Vehicle.Speed``, ``Vehicle.Powertrain.CombustionEngine.Speed``); OBD-only
quantities use the VSS OBD branch (``Vehicle.OBD.*``). The integer id is what
travels on the wire and is stored in the database: for OBD-II mode 01 PIDs it
is the PID number itself, other sources use ids from 256 up. Ids are never
reused or renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


class UnknownSignalError(KeyError):
    """Raised when a signal id or name is not in the catalog."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One catalog entry."""

    id: int
    name: str
    unit: str
    obd_pid: int | None = None
    obd_command: str | None = None
    description: str = ""


def _obd(pid: int, command: str, name: str, unit: str, description: str) -> Signal:
    return Signal(pid, name, unit, pid, command, description)


_SIGNALS: tuple[Signal, ...] = (
    _obd(0x04, "ENGINE_LOAD", "Vehicle.OBD.EngineLoad", "percent", "Calculated engine load"),
    _obd(
        0x05,
        "COOLANT_TEMP",
        "Vehicle.Powertrain.CombustionEngine.ECT",
        "celsius",
        "Engine coolant temperature",
    ),
    _obd(
        0x06,
        "SHORT_FUEL_TRIM_1",
        "Vehicle.OBD.ShortTermFuelTrim1",
        "percent",
        "Short term fuel trim, bank 1",
    ),
    _obd(
        0x07,
        "LONG_FUEL_TRIM_1",
        "Vehicle.OBD.LongTermFuelTrim1",
        "percent",
        "Long term fuel trim, bank 1",
    ),
    _obd(
        0x08,
        "SHORT_FUEL_TRIM_2",
        "Vehicle.OBD.ShortTermFuelTrim2",
        "percent",
        "Short term fuel trim, bank 2",
    ),
    _obd(
        0x09,
        "LONG_FUEL_TRIM_2",
        "Vehicle.OBD.LongTermFuelTrim2",
        "percent",
        "Long term fuel trim, bank 2",
    ),
    _obd(0x0A, "FUEL_PRESSURE", "Vehicle.OBD.FuelPressure", "kPa", "Fuel pressure (gauge)"),
    _obd(0x0B, "INTAKE_PRESSURE", "Vehicle.OBD.MAP", "kPa", "Intake manifold absolute pressure"),
    _obd(0x0C, "RPM", "Vehicle.Powertrain.CombustionEngine.Speed", "rpm", "Engine speed"),
    _obd(0x0D, "SPEED", "Vehicle.Speed", "km/h", "Vehicle speed"),
    _obd(
        0x0E, "TIMING_ADVANCE", "Vehicle.OBD.TimingAdvance", "degrees", "Timing advance before TDC"
    ),
    _obd(0x0F, "INTAKE_TEMP", "Vehicle.OBD.IntakeTemp", "celsius", "Intake air temperature"),
    _obd(0x10, "MAF", "Vehicle.Powertrain.CombustionEngine.MAF", "g/s", "Mass air flow rate"),
    _obd(0x11, "THROTTLE_POS", "Vehicle.OBD.ThrottlePosition", "percent", "Throttle position"),
    _obd(0x1F, "RUN_TIME", "Vehicle.OBD.RunTime", "s", "Run time since engine start"),
    _obd(
        0x21,
        "DISTANCE_W_MIL",
        "Vehicle.OBD.DistanceWithMIL",
        "km",
        "Distance travelled with the MIL on",
    ),
    _obd(0x2C, "COMMANDED_EGR", "Vehicle.OBD.CommandedEGR", "percent", "Commanded EGR"),
    _obd(
        0x2E,
        "EVAPORATIVE_PURGE",
        "Vehicle.OBD.CommandedEVAP",
        "percent",
        "Commanded evaporative purge",
    ),
    _obd(
        0x2F,
        "FUEL_LEVEL",
        "Vehicle.Powertrain.FuelSystem.RelativeLevel",
        "percent",
        "Fuel tank level input",
    ),
    _obd(
        0x30,
        "WARMUPS_SINCE_DTC_CLEAR",
        "Vehicle.OBD.WarmupsSinceDTCClear",
        "count",
        "Warm-ups since codes cleared",
    ),
    _obd(
        0x31,
        "DISTANCE_SINCE_DTC_CLEAR",
        "Vehicle.OBD.DistanceSinceDTCClear",
        "km",
        "Distance travelled since codes cleared",
    ),
    _obd(
        0x33,
        "BAROMETRIC_PRESSURE",
        "Vehicle.OBD.BarometricPressure",
        "kPa",
        "Absolute barometric pressure",
    ),
    _obd(
        0x3C,
        "CATALYST_TEMP_B1S1",
        "Vehicle.OBD.Catalyst.Bank1.Temperature1",
        "celsius",
        "Catalyst temperature, bank 1 sensor 1",
    ),
    _obd(
        0x42,
        "CONTROL_MODULE_VOLTAGE",
        "Vehicle.OBD.ControlModuleVoltage",
        "V",
        "Control module voltage",
    ),
    _obd(0x43, "ABSOLUTE_LOAD", "Vehicle.OBD.AbsoluteLoad", "percent", "Absolute load value"),
    _obd(
        0x44,
        "COMMANDED_EQUIV_RATIO",
        "Vehicle.OBD.CommandedEquivalenceRatio",
        "ratio",
        "Commanded air-fuel equivalence ratio",
    ),
    _obd(
        0x45,
        "RELATIVE_THROTTLE_POS",
        "Vehicle.OBD.RelativeThrottlePosition",
        "percent",
        "Relative throttle position",
    ),
    _obd(
        0x46,
        "AMBIANT_AIR_TEMP",
        "Vehicle.Exterior.AirTemperature",
        "celsius",
        "Ambient air temperature",
    ),
    _obd(
        0x47,
        "THROTTLE_POS_B",
        "Vehicle.OBD.ThrottlePositionB",
        "percent",
        "Absolute throttle position B",
    ),
    _obd(
        0x49,
        "ACCELERATOR_POS_D",
        "Vehicle.OBD.AcceleratorPositionD",
        "percent",
        "Accelerator pedal position D",
    ),
    _obd(
        0x4A,
        "ACCELERATOR_POS_E",
        "Vehicle.OBD.AcceleratorPositionE",
        "percent",
        "Accelerator pedal position E",
    ),
    _obd(
        0x4C,
        "THROTTLE_ACTUATOR",
        "Vehicle.OBD.ThrottleActuator",
        "percent",
        "Commanded throttle actuator",
    ),
    _obd(0x4D, "RUN_TIME_MIL", "Vehicle.OBD.TimeRunMIL", "min", "Time run with the MIL on"),
    _obd(
        0x4E,
        "TIME_SINCE_DTC_CLEARED",
        "Vehicle.OBD.TimeSinceDTCCleared",
        "min",
        "Time since trouble codes cleared",
    ),
    _obd(
        0x5A,
        "RELATIVE_ACCEL_POS",
        "Vehicle.OBD.RelativeAcceleratorPosition",
        "percent",
        "Relative accelerator pedal position",
    ),
    _obd(
        0x5C,
        "OIL_TEMP",
        "Vehicle.Powertrain.CombustionEngine.EOT",
        "celsius",
        "Engine oil temperature",
    ),
    _obd(0x5E, "FUEL_RATE", "Vehicle.OBD.FuelRate", "l/h", "Engine fuel rate"),
    Signal(
        256,
        "Vehicle.LowVoltageBattery.CurrentVoltage",
        "V",
        description="Battery voltage at the OBD port (adapter AT RV)",
    ),
    Signal(257, "Vehicle.CurrentLocation.Latitude", "degrees", description="GNSS latitude"),
    Signal(258, "Vehicle.CurrentLocation.Longitude", "degrees", description="GNSS longitude"),
    Signal(259, "Vehicle.CurrentLocation.Heading", "degrees", description="GNSS heading"),
    Signal(260, "Vehicle.TraveledDistance", "km", description="Odometer"),
    Signal(
        261,
        "Vehicle.Powertrain.CombustionEngine.EngineHours",
        "h",
        description="Accumulated engine hours",
    ),
    # Read from the vehicle's CAN bus (firmware profiles map DBC signals to these names).
    Signal(262, "Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed", "km/h", description="Wheel speed"),
    Signal(263, "Vehicle.Chassis.Axle.Row1.Wheel.Right.Speed", "km/h", description="Wheel speed"),
    Signal(264, "Vehicle.Chassis.Axle.Row2.Wheel.Left.Speed", "km/h", description="Wheel speed"),
    Signal(265, "Vehicle.Chassis.Axle.Row2.Wheel.Right.Speed", "km/h", description="Wheel speed"),
    Signal(
        266, "Vehicle.Chassis.Brake.PedalPosition", "percent", description="Brake pedal position"
    ),
    Signal(
        267,
        "Vehicle.Chassis.SteeringWheel.Angle",
        "degrees",
        description="Steering wheel angle, positive to the left",
    ),
    Signal(
        268,
        "Vehicle.Acceleration.Longitudinal",
        "m/s^2",
        description="Longitudinal acceleration, positive forwards",
    ),
    Signal(
        269,
        "Vehicle.Acceleration.Lateral",
        "m/s^2",
        description="Lateral acceleration, positive to the left",
    ),
    Signal(270, "Vehicle.AngularVelocity.Yaw", "degrees/s", description="Yaw rate"),
    Signal(
        271,
        "Vehicle.Powertrain.Transmission.CurrentGear",
        "count",
        description="Engaged gear: 0 neutral, -1 reverse",
    ),
    Signal(
        272,
        "Vehicle.Chassis.Accelerator.PedalPosition",
        "percent",
        description="Accelerator pedal position",
    ),
    Signal(
        273,
        "Vehicle.OBD.Status.IsMILOn",
        "bool",
        description="Malfunction indicator lamp lit (1) or not (0)",
    ),
    Signal(
        274,
        "Vehicle.OBD.DM1.ActiveSPN",
        "count",
        description="J1939 DM1: suspect parameter number of the active fault (0: none)",
    ),
    Signal(
        275,
        "Vehicle.OBD.DM1.ActiveFMI",
        "count",
        description="J1939 DM1: failure mode identifier of the active fault",
    ),
    Signal(
        276,
        "Vehicle.Chassis.ParkingBrake.IsEngaged",
        "bool",
        description="Parking brake set (1) or released (0)",
    ),
    # Not in VSS (its CurrentLocation has no speed); the vehicle's own speed is Vehicle.Speed.
    Signal(277, "Vehicle.CurrentLocation.Speed", "km/h", description="GNSS ground speed"),
    # 400-449: quantities read from manufacturer PIDs (OBDb signalsets, mode 22); see
    # firmware_profiles/obdb/names.py for the OBDb suggestedMetric each one comes from.
    Signal(
        400,
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed",
        "percent",
        description="Traction battery state of charge, as shown to the driver",
    ),
    Signal(
        401,
        "Vehicle.Powertrain.TractionBattery.StateOfHealth",
        "percent",
        description="Traction battery state of health",
    ),
    Signal(
        402,
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
        "bool",
        description="Charging (1) or not (0)",
    ),
    Signal(
        403,
        "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure",
        "kPa",
        description="Tyre pressure, front left",
    ),
    Signal(
        404,
        "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure",
        "kPa",
        description="Tyre pressure, front right",
    ),
    Signal(
        405,
        "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure",
        "kPa",
        description="Tyre pressure, rear left",
    ),
    Signal(
        406,
        "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure",
        "kPa",
        description="Tyre pressure, rear right",
    ),
    Signal(
        407,
        "Vehicle.Powertrain.FuelSystem.Range",
        "km",
        description="Remaining range on the fuel in the tank",
    ),
    Signal(
        408,
        "Vehicle.Powertrain.Transmission.Temperature",
        "celsius",
        description="Transmission fluid temperature",
    ),
)

BY_ID: MappingProxyType[int, Signal] = MappingProxyType({s.id: s for s in _SIGNALS})
BY_NAME: MappingProxyType[str, Signal] = MappingProxyType({s.name: s for s in _SIGNALS})
BY_OBD_COMMAND: MappingProxyType[str, Signal] = MappingProxyType(
    {s.obd_command: s for s in _SIGNALS if s.obd_command}
)


def all_signals() -> tuple[Signal, ...]:
    """Return every catalog entry, ordered by id."""
    return tuple(sorted(_SIGNALS, key=lambda s: s.id))


def by_id(signal_id: int) -> Signal:
    """Return the signal with this wire id; raise UnknownSignalError if there is none."""
    try:
        return BY_ID[signal_id]
    except KeyError:
        raise UnknownSignalError(f"no signal with id {signal_id} in the catalog") from None


def by_name(name: str) -> Signal:
    """Return the signal with this VSS name; raise UnknownSignalError if there is none."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownSignalError(f"no signal named {name!r} in the catalog") from None


def by_obd_command(command: str) -> Signal:
    """Return the signal read by this python-obd command name (e.g. ``"RPM"``)."""
    try:
        return BY_OBD_COMMAND[command]
    except KeyError:
        raise UnknownSignalError(f"OBD command {command!r} is not in the catalog") from None
