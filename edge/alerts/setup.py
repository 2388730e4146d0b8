"""Build the alert engine a device configuration asks for."""

from __future__ import annotations

from collections.abc import Callable

from fleetlink.edge.alerts.engine import AlertEngine
from fleetlink.edge.alerts.sinks import create_sinks
from fleetlink.edge.alerts.store import alert_store_path
from fleetlink.edge.config import DeviceConfig
from fleetlink.firmware_profiles import AUTO_PROFILE, load_profile
from fleetlink.firmware_profiles.schema import AlertThresholds
from fleetlink.shared.messages import GeofenceSet


def profile_thresholds(config: DeviceConfig) -> AlertThresholds:
    """Return the ``[alerts]`` of the profile the device reads with: the CAN profile's, else
    the OBD section's fixed profile's; none (defaults) while the profile is chosen at
    connect."""
    if config.can is not None:
        return load_profile(config.can.profile).alerts
    if config.obd is not None and config.obd.profile != AUTO_PROFILE:
        return load_profile(config.obd.profile).alerts
    return AlertThresholds()


def create_engine(
    config: DeviceConfig, fences: Callable[[], GeofenceSet | None]
) -> AlertEngine | None:
    """Return the engine for ``config`` (None when ``[alerts] enabled = false``).

    Raises:
        AlertStoreError: the alert record beside the outbox cannot be opened.
    """
    if not config.alerts.enabled:
        return None
    return AlertEngine(
        config.alerts,
        profile_thresholds(config),
        alert_store_path(config.outbox.path),
        create_sinks(config.alerts),
        fences=fences,
    )
