"""The ECUs of an OBDb signalset, answering mode 22 requests with values from the physics model.

A simulated vehicle loaded with a signalset chain (most specific first, e.g. the Bolt EV, then
Chevrolet) answers each of its commands on the command's header with the reply the signal
definitions describe, encoded by :func:`~fleetlink.firmware_profiles.obdb.encode.encode_payload`
(the inverse of the agent's decoder). Values come from the vehicle's state where it has the
quantity (speed, odometer, fuel level, oil temperature), from a traction battery whose state
of charge falls with the distance driven, and otherwise from a plausible constant for the
signal's unit, always within the signal's range. A request to a known ECU for a DID it does
not have is answered ``7F 22 31`` (request out of range); one to an unknown ECU not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetlink.firmware_profiles.obdb.encode import encode_payload
from fleetlink.firmware_profiles.obdb.signalset import Command, Signal, VehicleSignals
from fleetlink.simulator.vehicle import VehicleState

SERVICE = 0x22
NEGATIVE = 0x7F
REQUEST_OUT_OF_RANGE = 0x31
# A 29-bit OBDb header ``DA1A`` is sent as 18 DA 1A F1 (priority 18, physical addressing,
# from the tester at F1); the ECU answers from 18 DA F1 1A.
PRIORITY_29 = 0x18
TESTER = 0xF1
_TIRE_PSI = {
    "frontLeftTirePressure": 35.5,
    "frontRightTirePressure": 35.0,
    "rearLeftTirePressure": 34.5,
    "rearRightTirePressure": 34.0,
}


def request_id(header: str) -> int:
    """Return the CAN id a command's ``hdr`` is sent on (11-bit ``7E4`` or 29-bit ``DA1A``)."""
    if len(header) == 4:
        return (PRIORITY_29 << 24) | (int(header, 16) << 8) | TESTER
    return int(header, 16)


@dataclass
class TractionBattery:
    """An EV battery whose state of charge falls with the distance driven."""

    start_soc_pct: float = 90.0
    pct_per_km: float = 100 / 380  # a Bolt EV's range, about 380 km
    start_odometer_km: float | None = None

    def soc_pct(self, state: VehicleState) -> float:
        """Return the state of charge now (never below 5 %)."""
        if self.start_odometer_km is None:
            self.start_odometer_km = state.odometer_km
        used = (state.odometer_km - self.start_odometer_km) * self.pct_per_km
        return max(5.0, self.start_soc_pct - used)


def _clamp(signal: Signal, value: float) -> float:
    high = signal.max if signal.max is not None and signal.max > signal.min else value
    return max(signal.min, min(value, high))


def _unit_default(signal: Signal, state: VehicleState) -> float | str:
    if signal.value_map:
        return next(iter(signal.value_map.values()))
    unit = signal.unit or ""
    high = signal.max if signal.max is not None else signal.min + 100
    if unit == "volts":
        if high <= 6.6:
            return 3.75  # a cell
        return 355.0 if high > 100 else state.battery_v
    if unit == "amps":
        return state.speed_kmh * 0.8
    if unit == "celsius":
        return 28.0
    if unit == "fahrenheit":
        return 82.0
    if unit == "kilometersPerHour":
        return state.speed_kmh
    if unit == "rpm":
        return state.rpm
    if unit == "percent":
        return 50.0
    return (signal.min + high) / 2


class ObdbEcus:
    """Answers the mode 22 commands of ``vehicle_signals`` for a simulated vehicle."""

    def __init__(
        self, vehicle_signals: VehicleSignals, battery: TractionBattery | None = None
    ) -> None:
        self.battery = battery or TractionBattery()
        self._by_request: dict[tuple[int, int], Command] = {}
        self.ecus: set[int] = set()
        for command in vehicle_signals.commands:
            if command.service != SERVICE:
                continue
            key = (request_id(command.header), command.pid)
            self._by_request.setdefault(key, command)
            self.ecus.add(key[0])

    @classmethod
    def from_files(
        cls, paths: Sequence[Path], year: int | None = None, battery: TractionBattery | None = None
    ) -> ObdbEcus:
        """Load the signalset chain ``paths`` (most specific first) for model year ``year``.

        Raises:
            SignalsetError: a file that is not an OBDb v3 signalset.
        """
        return cls(VehicleSignals.from_files(paths, year), battery)

    @property
    def commands(self) -> list[Command]:
        """Return every command answered, one per ECU and DID."""
        return list(self._by_request.values())

    def value(self, signal: Signal, state: VehicleState) -> float | str:
        """Return the value the vehicle reports for ``signal`` now."""
        metric = signal.suggested_metric
        value: float | str
        if metric == "stateOfCharge":
            value = self.battery.soc_pct(state)
        elif metric == "odometer":
            value = state.odometer_km
        elif metric == "speed":
            value = state.speed_kmh
        elif metric == "fuelTankLevel":
            value = state.fuel_level_pct
        elif metric == "engineOilTemperature":
            value = state.oil_temp_c
        elif metric in _TIRE_PSI:
            value = _TIRE_PSI[metric]
        else:
            value = _unit_default(signal, state)
        return value if isinstance(value, str) else _clamp(signal, value)

    def answer(self, can_id: int, request: bytes, state: VehicleState) -> tuple[int, bytes] | None:
        """Return (reply CAN id, payload) for a mode 22 ``request`` sent on ``can_id``, or None
        when no ECU listens there."""
        if can_id not in self.ecus or len(request) < 3 or request[0] != SERVICE:
            return None
        did = int.from_bytes(request[1:3], "big")
        command = self._by_request.get((can_id, did))
        reply_id = int(self._reply_from(can_id, command), 16)
        if command is None or len(request) != 3:
            return reply_id, bytes((NEGATIVE, SERVICE, REQUEST_OUT_OF_RANGE))
        values = {s.id: self.value(s, state) for s in command.signals}
        return reply_id, bytes((SERVICE + 0x40,)) + request[1:3] + encode_payload(command, values)

    def _reply_from(self, can_id: int, command: Command | None) -> str:
        if command is not None:
            return command.reply_from
        known = next(c for (i, _), c in self._by_request.items() if i == can_id)
        return known.reply_from
