"""The inverse of :mod:`.decode`: signal values into the payload bytes of a command's reply.

Used by the simulator to answer mode 22 requests as a vehicle with these signals would: each
value is scaled back to its raw bits (``(value - add) * div / mul``, rounded, clamped to what
the bit field holds) and written at its bit position, most significant bit first (``blsb``
signals byte-swapped afterwards, as the decoder swaps them back).
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetlink.firmware_profiles.obdb.signalset import Command, Signal


def payload_length(command: Command) -> int:
    """Return the bytes after the service and DID that hold every signal of ``command``."""
    return max(((s.bix + s.length + 7) // 8 for s in command.signals), default=0)


def raw_value(signal: Signal, value: float | str) -> int:
    """Return the raw bits that decode to ``value`` (nearest), clamped to the field.

    A value-map signal takes the map's name (or its raw code as a number).

    Raises:
        ValueError: a name the signal's map does not have.
    """
    if signal.value_map and isinstance(value, str):
        for code, name in signal.value_map.items():
            if name == value:
                return code
        raise ValueError(f"{signal.id}: {value!r} is not in its value map")
    raw = round((float(value) - signal.add) * signal.div / signal.mul)
    if signal.signed:
        low, high = -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    else:
        low, high = 0, (1 << signal.length) - 1
    return max(low, min(raw, high))


def encode_payload(command: Command, values: Mapping[str, float | str]) -> bytes:
    """Return the reply bytes after service and DID carrying ``values`` (by signal id);
    signals without a value stay zero."""
    size = payload_length(command)
    whole = 0
    swapped: list[Signal] = []
    for signal in command.signals:
        if signal.id not in values:
            continue
        bits = raw_value(signal, values[signal.id]) & ((1 << signal.length) - 1)
        shift = size * 8 - signal.bix - signal.length
        whole &= ~(((1 << signal.length) - 1) << shift)
        whole |= bits << shift
        if signal.little_endian and signal.length > 8:
            swapped.append(signal)
    payload = bytearray(whole.to_bytes(size, "big"))
    for signal in swapped:
        first = signal.bix // 8
        last = min(first + (signal.length + 7) // 8, size)
        payload[first:last] = payload[first:last][::-1]
    return bytes(payload)
