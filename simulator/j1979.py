"""SAE J1979 encoders: vehicle state to the data bytes an ECU sends for mode 01, 03/07/0A and 09.

Each ``encode_*`` function applies one standard scaling formula and clamps to the field's
range; the PID table below says which state field each mode 01 PID reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MappingProxyType

from fleetlink.simulator.readiness import encode_monitor_status, encode_monitor_status_this_cycle
from fleetlink.simulator.vehicle import VehicleState


class InvalidDtcError(ValueError):
    """Raised when a trouble code is not one letter (P, C, B, U) and four hex digits."""


def _uint(value: float, n_bytes: int) -> bytes:
    top = 256**n_bytes - 1
    return max(0, min(top, round(value))).to_bytes(n_bytes, "big")


def encode_percent(pct: float) -> bytes:
    """Return A where pct = A * 100 / 255 (0-100 %)."""
    return _uint(pct * 255.0 / 100.0, 1)


def encode_percent_centered(pct: float) -> bytes:
    """Return A where pct = (A - 128) * 100 / 128 (-100 to 99.2 %)."""
    return _uint(pct * 128.0 / 100.0 + 128.0, 1)


def encode_temperature(celsius: float) -> bytes:
    """Return A where celsius = A - 40 (-40 to 215 degC)."""
    return _uint(celsius + 40.0, 1)


def encode_rpm(rpm: float) -> bytes:
    """Return AB where rpm = (256A + B) / 4 (0 to 16383.75 rpm)."""
    return _uint(rpm * 4.0, 2)


def encode_byte(value: float) -> bytes:
    """Return A where value = A (0-255: km/h, kPa, counts)."""
    return _uint(value, 1)


def encode_word(value: float) -> bytes:
    """Return AB where value = 256A + B (0-65535: seconds, km, minutes, Nm)."""
    return _uint(value, 2)


def encode_maf(grams_per_s: float) -> bytes:
    """Return AB where g/s = (256A + B) / 100 (0 to 655.35 g/s)."""
    return _uint(grams_per_s * 100.0, 2)


def encode_timing_advance(degrees: float) -> bytes:
    """Return A where degrees = A / 2 - 64 (-64 to 63.5 degrees before TDC)."""
    return _uint(degrees * 2.0 + 128.0, 1)


def encode_fuel_pressure(kpa: float) -> bytes:
    """Return A where kPa = 3A (0 to 765 kPa gauge)."""
    return _uint(kpa / 3.0, 1)


def encode_catalyst_temperature(celsius: float) -> bytes:
    """Return AB where celsius = (256A + B) / 10 - 40 (-40 to 6513.5 degC)."""
    return _uint((celsius + 40.0) * 10.0, 2)


def encode_voltage(volts: float) -> bytes:
    """Return AB where volts = (256A + B) / 1000 (0 to 65.535 V)."""
    return _uint(volts * 1000.0, 2)


def encode_absolute_load(pct: float) -> bytes:
    """Return AB where pct = (256A + B) * 100 / 255 (0 to 25700 %)."""
    return _uint(pct * 255.0 / 100.0, 2)


def encode_equivalence_ratio(ratio: float) -> bytes:
    """Return AB where ratio = (256A + B) * 2 / 65536 (0 to < 2)."""
    return _uint(ratio * 32768.0, 2)


def encode_fuel_rate(litres_per_h: float) -> bytes:
    """Return AB where L/h = (256A + B) / 20 (0 to 3276.75 L/h)."""
    return _uint(litres_per_h * 20.0, 2)


def encode_torque_percent(pct: float) -> bytes:
    """Return A where pct = A - 125 (-125 to 130 %)."""
    return _uint(pct + 125.0, 1)


def encode_dtc(code: str) -> bytes:
    """Return the two bytes of a trouble code such as "P0171".

    Raises InvalidDtcError when ``code`` is not a letter P/C/B/U and four hex digits
    (the first of them 0-3).
    """
    code = code.upper()
    letters = "PCBU"
    if len(code) != 5 or code[0] not in letters or code[1] not in "0123":
        raise InvalidDtcError(f"{code!r} is not a DTC like P0171")
    try:
        low = int(code[2:], 16)
    except ValueError:
        raise InvalidDtcError(f"{code!r} is not a DTC like P0171") from None
    return bytes((letters.index(code[0]) << 6 | int(code[1]) << 4 | low >> 8, low & 0xFF))


def encode_dtc_list(service: int, codes: Iterable[str]) -> bytes:
    """Return a CAN reply to mode 03, 07 or 0A: the response id, the count, then each code."""
    encoded = [encode_dtc(c) for c in codes]
    return bytes((service + 0x40, len(encoded))) + b"".join(encoded)


_Encoder = Callable[[VehicleState], bytes]

# Mode 01 PID -> encoder. Every mode 01 PID of shared/signals.py is here, plus a few more.
MODE_01_ENCODERS: MappingProxyType[int, _Encoder] = MappingProxyType(
    {
        0x01: encode_monitor_status,
        0x04: lambda s: encode_percent(s.engine_load_pct),
        0x05: lambda s: encode_temperature(s.coolant_temp_c),
        0x06: lambda s: encode_percent_centered(s.short_fuel_trim_pct[0]),
        0x07: lambda s: encode_percent_centered(s.long_fuel_trim_pct[0]),
        0x08: lambda s: encode_percent_centered(s.short_fuel_trim_pct[1]),
        0x09: lambda s: encode_percent_centered(s.long_fuel_trim_pct[1]),
        0x0A: lambda s: encode_fuel_pressure(s.fuel_pressure_kpa),
        0x0B: lambda s: encode_byte(s.intake_pressure_kpa),
        0x0C: lambda s: encode_rpm(s.rpm),
        0x0D: lambda s: encode_byte(s.speed_kmh),
        0x0E: lambda s: encode_timing_advance(s.timing_advance_deg),
        0x0F: lambda s: encode_temperature(s.intake_temp_c),
        0x10: lambda s: encode_maf(s.maf_gs),
        0x11: lambda s: encode_percent(s.throttle_pct),
        0x1C: lambda s: bytes((0x03,)),  # OBD and OBD-II
        0x1F: lambda s: encode_word(s.run_time_s),
        0x21: lambda s: encode_word(s.distance_with_mil_km),
        0x2C: lambda s: encode_percent(s.commanded_egr_pct),
        0x2E: lambda s: encode_percent(s.evap_purge_pct),
        0x2F: lambda s: encode_percent(s.fuel_level_pct),
        0x30: lambda s: encode_byte(s.warmups_since_clear),
        0x31: lambda s: encode_word(s.distance_since_clear_km),
        0x33: lambda s: encode_byte(s.barometric_pressure_kpa),
        0x3C: lambda s: encode_catalyst_temperature(s.catalyst_temp_c),
        0x41: encode_monitor_status_this_cycle,
        0x42: lambda s: encode_voltage(s.control_module_v),
        0x43: lambda s: encode_absolute_load(s.absolute_load_pct),
        0x44: lambda s: encode_equivalence_ratio(s.equivalence_ratio),
        0x45: lambda s: encode_percent(max(0.0, s.throttle_pct - 6.0) / 0.94),
        0x46: lambda s: encode_temperature(s.ambient_temp_c),
        0x47: lambda s: encode_percent(s.throttle_pct * 0.98 + 1.0),
        0x49: lambda s: encode_percent(15.0 + 0.65 * s.accelerator_pct),
        0x4A: lambda s: encode_percent(7.5 + 0.325 * s.accelerator_pct),
        0x4C: lambda s: encode_percent(s.throttle_pct),
        0x4D: lambda s: encode_word(s.time_with_mil_min),
        0x4E: lambda s: encode_word(s.time_since_clear_min),
        0x5A: lambda s: encode_percent(s.accelerator_pct),
        0x5C: lambda s: encode_temperature(s.oil_temp_c),
        0x5E: lambda s: encode_fuel_rate(s.fuel_rate_lph),
        0x61: lambda s: encode_torque_percent(s.accelerator_pct if s.engine_running else 0.0),
        0x62: lambda s: encode_torque_percent(s.engine_torque_pct),
        0x63: lambda s: encode_word(200),
    }
)

_BITMAP_PIDS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0)


def support_bitmap(base: int, supported: Iterable[int]) -> bytes:
    """Return the 4-byte bitmap of which PIDs ``base + 1`` .. ``base + 0x20`` are in ``supported``.

    The last bit (``base + 0x20``) is set when any PID above that is supported, as J1979
    requires, so a tester knows to ask for the next bitmap.
    """
    pids = set(supported)
    bits = 0
    for i in range(1, 0x21):
        if base + i in pids or (i == 0x20 and any(p > base + 0x20 for p in pids)):
            bits |= 1 << (32 - i)
    return bits.to_bytes(4, "big")


def supported_mode_01_pids() -> frozenset[int]:
    """Return every mode 01 PID that answers, the bitmap PIDs included."""
    data_pids = set(MODE_01_ENCODERS)
    bitmaps = {b for b in _BITMAP_PIDS if b == 0 or any(p > b for p in data_pids)}
    return frozenset(data_pids | bitmaps)


def encode_mode_01(pid: int, state: VehicleState) -> bytes | None:
    """Return the data bytes (no mode, no PID) answering mode 01 ``pid``; None if unsupported."""
    if pid in _BITMAP_PIDS:
        if pid not in supported_mode_01_pids():
            return None
        return support_bitmap(pid, supported_mode_01_pids())
    encoder = MODE_01_ENCODERS.get(pid)
    return None if encoder is None else encoder(state)


MODE_09_PIDS = frozenset({0x01, 0x02})


def encode_mode_09(pid: int, state: VehicleState) -> bytes | None:
    """Return the data bytes (no mode, no PID) answering mode 09 ``pid``; None if unsupported."""
    if pid == 0x00:
        return support_bitmap(0x00, MODE_09_PIDS)
    if pid == 0x01:
        return bytes((0x01,))  # the VIN fits one CAN message
    if pid == 0x02:
        return bytes((0x01,)) + state.vin.encode("ascii")
    return None
