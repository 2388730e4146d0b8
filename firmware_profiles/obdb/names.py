"""Canonical names for OBDb signals: VSS where VSS has the quantity, else ``Fleetlink.OBDb.*``.

OBDb's ``suggestedMetric`` names a well-known quantity; those with a VSS leaf map to it. Every
other signal is named ``Fleetlink.OBDb.<path>.<id>`` (OBDb's dotted ``path`` grouping, then the
signal id), so two signalsets never collide and the name says where it came from.

Every VSS name here is in the signal catalog (:mod:`fleetlink.shared.signals`), so the agent
can publish it; ``Fleetlink.OBDb.*`` names are decoded on the vehicle but have no wire id.
"""

from __future__ import annotations

VSS_BY_METRIC: dict[str, str] = {
    "odometer": "Vehicle.TraveledDistance",
    "speed": "Vehicle.Speed",
    "stateOfCharge": "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed",
    "stateOfHealth": "Vehicle.Powertrain.TractionBattery.StateOfHealth",
    "isCharging": "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
    "fuelTankLevel": "Vehicle.Powertrain.FuelSystem.RelativeLevel",
    "fuelRange": "Vehicle.Powertrain.FuelSystem.Range",
    "fuelRate": "Vehicle.OBD.FuelRate",
    "frontLeftTirePressure": "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure",
    "frontRightTirePressure": "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure",
    "rearLeftTirePressure": "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure",
    "rearRightTirePressure": "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure",
    "engineCoolantTemperature": "Vehicle.Powertrain.CombustionEngine.ECT",
    "engineLoad": "Vehicle.OBD.EngineLoad",
    "engineOilTemperature": "Vehicle.Powertrain.CombustionEngine.EOT",
    "massAirFlow": "Vehicle.Powertrain.CombustionEngine.MAF",
    "throttlePosition": "Vehicle.OBD.ThrottlePosition",
    "shortTermFuelTrim": "Vehicle.OBD.ShortTermFuelTrim1",
    "distanceSinceDTCsCleared": "Vehicle.OBD.DistanceSinceDTCClear",
    "commandedLambda": "Vehicle.OBD.CommandedEquivalenceRatio",
    "starterBatteryVoltage": "Vehicle.LowVoltageBattery.CurrentVoltage",
    "transmissionFluidTemperature": "Vehicle.Powertrain.Transmission.Temperature",
}

NAMESPACE = "Fleetlink.OBDb"


def canonical_name(signal_id: str, path: str | None, suggested_metric: str | None) -> str:
    """The name a decoded OBDb signal is published under."""
    if suggested_metric is not None and suggested_metric in VSS_BY_METRIC:
        return VSS_BY_METRIC[suggested_metric]
    group = ".".join(part for part in (path or "").split(".") if part)
    return f"{NAMESPACE}.{group}.{signal_id}" if group else f"{NAMESPACE}.{signal_id}"
