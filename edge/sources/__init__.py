"""Signal sources, one per file, chosen by name (python-can's ``Bus(interface=…)`` shape).

:func:`create_sources` builds every source the device configuration asks for; a new
source adds one entry to ``_FACTORIES`` and its own module, never a change to the core.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fleetlink.edge.config import DeviceConfig
from fleetlink.edge.sources.base import Sample, SampleQueue, Source

__all__ = ["Sample", "SampleQueue", "Source", "create_sources"]


def _obd(config: DeviceConfig) -> Source | None:
    if config.obd is None:
        return None
    module = importlib.import_module("fleetlink.edge.sources.obd_source")
    source: Source = module.ObdSource(config.obd)
    return source


def _gps(config: DeviceConfig) -> Source | None:
    if config.gps is None:
        return None
    module = importlib.import_module("fleetlink.edge.sources.gps_source")
    source: Source = module.GpsSource(config.gps)
    return source


_FACTORIES: dict[str, Callable[[DeviceConfig], Source | None]] = {"obd": _obd, "gps": _gps}


def create_sources(config: DeviceConfig) -> list[Source]:
    """Return a source for every section of ``config`` that configures one (may be empty)."""
    sources = []
    for factory in _FACTORIES.values():
        source = factory(config)
        if source is not None:
            sources.append(source)
    return sources
