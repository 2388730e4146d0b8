"""A starting firmware profile for a vehicle no shipped profile fits, from what it reported.

:func:`suggest_profile` turns a capability record (VIN, protocol, supported PIDs) into the
TOML text of a profile: match rules from the VIN (manufacturer code, make, model years) and
the protocol, the adapter's protocol, and every supported PID the signal catalog knows, at
a rate suited to how fast it changes. It is a draft for a technician to review, not a
verdict: the rates are rules of thumb.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fleetlink.edge.capabilities import Capabilities
from fleetlink.edge.link.python_obd import obd
from fleetlink.firmware_profiles.schema import OBD_PROTOCOLS, PROFILE_ID
from fleetlink.shared.signals import UnknownSignalError, by_obd_command

# What the driver changes second by second: read often, first.
_FAST = frozenset(
    {
        "RPM",
        "SPEED",
        "THROTTLE_POS",
        "ENGINE_LOAD",
        "ACCELERATOR_POS_D",
        "ACCELERATOR_POS_E",
        "RELATIVE_ACCEL_POS",
        "MAF",
        "FUEL_RATE",
    }
)
# What changes over minutes or only between trips.
_SLOW = frozenset(
    {
        "COOLANT_TEMP",
        "INTAKE_TEMP",
        "AMBIANT_AIR_TEMP",
        "OIL_TEMP",
        "CATALYST_TEMP_B1S1",
        "FUEL_LEVEL",
        "BAROMETRIC_PRESSURE",
        "DISTANCE_SINCE_DTC_CLEAR",
        "DISTANCE_W_MIL",
        "RUN_TIME",
        "RUN_TIME_MIL",
        "TIME_SINCE_DTC_CLEARED",
        "WARMUPS_SINCE_DTC_CLEAR",
        "CONTROL_MODULE_VOLTAGE",
    }
)


def catalog_commands(pids: list[int]) -> list[str]:
    """Return the python-obd names of the mode 01 ``pids`` that the signal catalog knows."""
    names = []
    for pid in pids:
        if not obd.commands.has_pid(1, pid):
            continue
        name = obd.commands[1][pid].name
        try:
            by_obd_command(name)
        except UnknownSignalError:
            continue
        names.append(name)
    return names


def profile_id_for(record: Capabilities) -> str:
    """Return a profile id naming the vehicle: make and first model year, else the WMI."""
    parts = [record.make or (record.vin or "vehicle")[:3]]
    if record.model_years:
        parts.append(str(record.model_years[0]))
    slug = re.sub(r"[^a-z0-9]+", "-", " ".join(parts).lower()).strip("-")
    candidate = f"{slug or 'vehicle'}-obd2"[:64]
    return candidate if PROFILE_ID.match(candidate) else "suggested-obd2"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def suggest_profile(record: Capabilities, profile_id: str | None = None) -> str:
    """Return the TOML text of a starting profile for the vehicle of ``record``.

    Raises:
        ValueError: ``profile_id`` is not a valid profile id, or the record lists no PID
            the signal catalog knows (nothing to poll).
    """
    profile_id = profile_id or profile_id_for(record)
    if not PROFILE_ID.match(profile_id):
        raise ValueError(f"{profile_id!r}: a profile id is 1-64 lower-case letters, digits, dashes")
    commands = catalog_commands(record.supported_pids)
    if not commands:
        raise ValueError(
            "the vehicle reports no supported mode 01 PID that the signal catalog knows; "
            "there is nothing to poll"
        )
    name = " ".join(p for p in (record.make, _years(record)) if p) or "Unknown vehicle"
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        "# Suggested by `fleetlink edge profile suggest` from what the vehicle reported on "
        f"{when}:",
        f"# VIN {record.vin or '(none)'}, protocol {record.protocol_name or record.protocol_id}, "
        f"{len(record.supported_pids)} mode 01 PIDs supported.",
        "# Review the match rules and the rates, then validate it with",
        "# `fleetlink edge check-config` (naming it in [obd] profile) before use.",
        "format = 1",
        f"id = {_quoted(profile_id)}",
        f"name = {_quoted(name + ' (suggested)')}",
        'version = "0.1.0"',
        f"description = {_quoted('Starting profile written from what the vehicle reported.')}",
        "",
        "[match]",
    ]
    if record.vin:
        lines.append(f"wmi = [{_quoted(record.vin[:3].upper())}]")
    if record.make:
        lines.append(f"makes = [{_quoted(record.make)}]")
    if record.model_years:
        lines.append(f"years = [{min(record.model_years)}, {max(record.model_years)}]")
    if record.protocol_id in OBD_PROTOCOLS:
        lines.append(f"protocols = [{_quoted(record.protocol_id)}]")
        lines += ["", "[obd.adapter]", f"protocol = {_quoted(record.protocol_id)}"]
    for command in commands:
        rate, priority = (
            (5.0, "high")
            if command in _FAST
            else (0.2, "low")
            if command in _SLOW
            else (1.0, "normal")
        )
        lines += [
            "",
            "[[obd.pids]]",
            f"command = {_quoted(command)}",
            f"rate_hz = {rate}",
            f"priority = {_quoted(priority)}",
        ]
    return "\n".join(lines) + "\n"


def _years(record: Capabilities) -> str:
    if not record.model_years:
        return ""
    first, last = min(record.model_years), max(record.model_years)
    return str(first) if first == last else f"{first}-{last}"
