"""Alerts printed to a terminal with rich: one coloured line per alert and acknowledgement."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime
from typing import TextIO

from rich.console import Console

from fleetlink.edge.alerts.alert import Alert
from fleetlink.edge.alerts.sinks.base import AlertSink

_STYLE = {"info": "bold cyan", "warning": "bold yellow", "critical": "bold white on red"}


class TerminalSink(AlertSink):
    """Prints to ``file`` (standard output by default)."""

    name = "terminal"

    def __init__(self, file: TextIO | None = None) -> None:
        self.console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True)

    def show(self, alert: Alert) -> None:
        at = datetime.fromtimestamp(alert.time_ms / 1000).strftime("%H:%M:%S")
        note = "  [reported to your fleet manager]" if alert.escalated else ""
        self.console.print(
            f"{at} ALERT {alert.message}{note}  (ack: fleetlink edge alerts ack {alert.id})",
            style=_STYLE[alert.severity],
            markup=False,
        )

    def acknowledged(self, alert_id: uuid.UUID) -> None:
        self.console.print(f"acknowledged {alert_id}", style="dim")
