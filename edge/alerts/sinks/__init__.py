"""Alert sinks, one per module, chosen by name in ``[alerts] sinks`` (python-can's
``Bus(interface=…)`` shape): a new sink adds a module and an entry to ``_FACTORIES``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from fleetlink.edge.alerts.settings import AlertsSection
from fleetlink.edge.alerts.sinks.base import Acknowledge, AlertSink

__all__ = ["Acknowledge", "AlertSink", "create_sinks"]


def _terminal(settings: AlertsSection) -> AlertSink:
    sink: AlertSink = importlib.import_module("fleetlink.edge.alerts.sinks.terminal").TerminalSink()
    return sink


def _speech(settings: AlertsSection) -> AlertSink:
    module = importlib.import_module("fleetlink.edge.alerts.sinks.speech")
    sink: AlertSink = module.SpeechSink(settings.speech_command)
    return sink


def _cab_display(settings: AlertsSection) -> AlertSink:
    module = importlib.import_module("fleetlink.edge.alerts.sinks.cab_display")
    sink: AlertSink = module.CabDisplaySink(settings.display_address, settings.display_port)
    return sink


def _gpio(settings: AlertsSection) -> AlertSink:
    module = importlib.import_module("fleetlink.edge.alerts.sinks.gpio")
    sink: AlertSink = module.GpioSink(
        settings.gpio_sysfs, settings.gpio_line, settings.gpio_pulse_s
    )
    return sink


_FACTORIES: dict[str, Callable[[AlertsSection], AlertSink]] = {
    "terminal": _terminal,
    "speech": _speech,
    "cab_display": _cab_display,
    "gpio": _gpio,
}


def create_sinks(settings: AlertsSection) -> list[AlertSink]:
    """Return one sink per name in ``settings.sinks`` (in that order, each once)."""
    return [_FACTORIES[name](settings) for name in dict.fromkeys(settings.sinks)]
