"""Readiness monitors of the simulated petrol engine, as PID 01 (since the codes were cleared)
and PID 41 (this drive cycle) report them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetlink.simulator.vehicle import VehicleState

# Spark-ignition monitors in the bit order of PID 01 byte C (supported) and byte D (incomplete).
SPARK_MONITORS = (
    "catalyst",
    "heated_catalyst",
    "evaporative_system",
    "secondary_air_system",
    "ac_refrigerant",
    "oxygen_sensor",
    "oxygen_sensor_heater",
    "egr_system",
)
# Continuous monitors in byte B: bit 0-2 supported, bit 4-6 incomplete.
CONTINUOUS_MONITORS = ("misfire", "fuel_system", "components")
# What the simulated petrol engine supports: the continuous ones and these.
SUPPORTED_MONITORS = frozenset(
    {
        *CONTINUOUS_MONITORS,
        "catalyst",
        "evaporative_system",
        "oxygen_sensor",
        "oxygen_sensor_heater",
        "egr_system",
    }
)
# After mode 04 every non-continuous monitor has to run again.
RESET_BY_CLEAR = frozenset(SUPPORTED_MONITORS - set(CONTINUOUS_MONITORS))


def _monitor_bytes(incomplete: frozenset[str]) -> tuple[int, int, int]:
    b = 0
    for bit, name in enumerate(CONTINUOUS_MONITORS):
        if name in SUPPORTED_MONITORS:
            b |= 1 << bit
            if name in incomplete:
                b |= 1 << (bit + 4)
    c = d = 0
    for bit, name in enumerate(SPARK_MONITORS):
        if name in SUPPORTED_MONITORS:
            c |= 1 << bit
            if name in incomplete:
                d |= 1 << bit
    return b, c, d


def encode_monitor_status(state: VehicleState) -> bytes:
    """Return PID 01's four bytes: MIL and stored-code count, then the readiness since clear."""
    a = (0x80 if state.mil_on else 0x00) | min(len(state.stored_dtcs), 0x7F)
    b, c, d = _monitor_bytes(state.incomplete_monitors)
    return bytes((a, b, c, d))


def encode_monitor_status_this_cycle(state: VehicleState) -> bytes:
    """Return PID 41's four bytes: byte A reserved, then the readiness of this drive cycle.

    A monitor incomplete since the last clear is incomplete this cycle too; the rest have
    run this cycle once the engine has been running a minute.
    """
    ran = state.run_time_s >= 60.0
    incomplete = state.incomplete_monitors | (frozenset() if ran else RESET_BY_CLEAR)
    b, c, d = _monitor_bytes(incomplete)
    return bytes((0x00, b, c, d))
