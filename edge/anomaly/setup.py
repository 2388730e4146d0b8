"""Which models an agent runs: those of the profile its configuration names, or, with
``obd.profile = "auto"`` and no ``[anomaly] profile``, those of the profile the OBD source
picks at connect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetlink.edge.config import DeviceConfig
from fleetlink.firmware_profiles import (
    AUTO_PROFILE,
    ProfileError,
    load_profile,
    profile_folder,
)
from fleetlink.shared.signals import UnknownSignalError, by_id, by_obd_command

if TYPE_CHECKING:
    from fleetlink.edge.anomaly.runtime import AnomalyModels

_BATTERY_SIGNAL_ID = 256


def _profile_ref(config: DeviceConfig) -> str | None:
    if config.anomaly.profile is not None:
        return config.anomaly.profile
    if config.obd is not None and config.obd.profile != AUTO_PROFILE:
        return config.obd.profile
    if config.can is not None:
        return config.can.profile
    return None


def waits_for_detected_profile(config: DeviceConfig) -> bool:
    """Return True when the agent's models are those of the profile its OBD source picks at
    connect (``obd.profile = "auto"``, no ``[anomaly] profile``, no ``[can]`` section)."""
    return config.anomaly.enabled and _profile_ref(config) is None and config.obd is not None


def available_signals(config: DeviceConfig) -> set[str] | None:
    """Return the signal names the configured sources read, or None when that is decided
    only at connect (an ``[obd]`` section whose profile is ``auto``, without polls)."""
    names: set[str] = set()
    if config.obd is not None:
        obd = config.obd
        if not obd.poll and obd.profile == AUTO_PROFILE:
            return None
        fixed = obd.fixed_profile()
        commands = [r.command for r in obd.schedule(fixed)] if fixed else []
        commands += [c for group in obd.poll for c in group.commands]
        for command in commands:
            try:
                names.add(by_obd_command(command).name)
            except UnknownSignalError:
                continue
        if obd.battery_rate_hz > 0:
            names.add(by_id(_BATTERY_SIGNAL_ID).name)
    if config.can is not None:
        try:
            can = load_profile(config.can.profile).can
        except ProfileError:
            can = None
        if can is not None:
            names.update(m.vss for m in can.signals)
    return names


def models_for(config: DeviceConfig, detected: str | None = None) -> AnomalyModels | None:
    """Return the models of the agent's profile (each one that cannot run is logged once and
    reported in ``status``), or None when the profile names none (nothing is loaded then).

    ``detected``: the profile the OBD source picked at connect, used when the configuration
    names none (``waits_for_detected_profile``).
    """
    ref = _profile_ref(config) or detected
    if not config.anomaly.enabled or ref is None:
        return None
    try:
        profile = load_profile(ref)
    except ProfileError:
        return None  # the sources report a broken profile themselves
    if not profile.models:
        return None
    from fleetlink.edge.anomaly.runtime import AnomalyModels

    return AnomalyModels.for_profile(
        profile,
        profile_folder(ref),
        available_signals(config),
        config.anomaly.consecutive_windows,
    )
