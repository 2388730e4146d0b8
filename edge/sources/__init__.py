"""Signal sources, one per file, chosen by name (python-can's ``Bus(interface=…)`` shape).

:func:`create_sources` builds every source the device configuration asks for; a new
source adds one entry to ``_FACTORIES`` and its own module, never a change to the core.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fleetlink.edge.config import DeviceConfig
from fleetlink.edge.sources.base import CanActivity, EventQueue, Sample, SampleQueue, Source

__all__ = ["EventQueue", "Sample", "SampleQueue", "Source", "create_sources"]

# The vehicle records beside the outbox (their own file: an outbox moved aside keeps them).
CAPABILITIES_FILE = "vehicle.sqlite"


def _obd(config: DeviceConfig) -> Source | None:
    if config.obd is None:
        return None
    module = importlib.import_module("fleetlink.edge.sources.obd_source")
    path = config.outbox.path.parent / CAPABILITIES_FILE
    source: Source = module.ObdSource(config.obd, capabilities_path=path)
    return source


def _can(config: DeviceConfig) -> Source | None:
    if config.can is None:
        return None
    module = importlib.import_module("fleetlink.edge.sources.can_source")
    source: Source = module.CanSource(config.can)
    return source


def _gps(config: DeviceConfig) -> Source | None:
    if config.gps is None:
        return None
    module = importlib.import_module("fleetlink.edge.sources.gps_source")
    source: Source = module.GpsSource(config.gps)
    return source


_FACTORIES: dict[str, Callable[[DeviceConfig], Source | None]] = {
    "obd": _obd,
    "can": _can,
    "gps": _gps,
}


def create_sources(config: DeviceConfig) -> list[Source]:
    """Return a source for every section of ``config`` that configures one (may be empty)."""
    sources = []
    for factory in _FACTORIES.values():
        source = factory(config)
        if source is not None:
            sources.append(source)
    connect_can_activity(sources)
    return sources


def connect_can_activity(sources: list[Source]) -> None:
    """Let every source that observes CAN activity (``observe_can``) see the first source
    that reports it (:class:`~fleetlink.edge.sources.base.CanActivity`)."""
    activity = next((s for s in sources if isinstance(s, CanActivity)), None)
    if activity is None:
        return
    for source in sources:
        observe = getattr(source, "observe_can", None)
        if observe is not None and source is not activity:
            observe(activity)
