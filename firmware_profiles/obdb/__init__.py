"""OBDb signalsets: read the open vehicle-signal database and decode ELM327 replies with it."""

from fleetlink.firmware_profiles.obdb.decode import Decoded, DecodeStats, decode_reply
from fleetlink.firmware_profiles.obdb.signalset import (
    Command,
    Signal,
    SignalsetError,
    VehicleSignals,
    load_signalset,
)

__all__ = [
    "Command",
    "DecodeStats",
    "Decoded",
    "Signal",
    "SignalsetError",
    "VehicleSignals",
    "decode_reply",
    "load_signalset",
]
