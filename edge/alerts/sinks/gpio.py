"""A buzzer or LED on a GPIO line, pulsed once per alert through the kernel's sysfs GPIO
interface (``/sys/class/gpio/gpioN/value``, exported with direction ``out`` by the installer).

Where the line does not exist (no GPIO on this machine, or not exported) the sink says so
once in the log and does nothing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fleetlink.edge.alerts.alert import Alert
from fleetlink.edge.alerts.sinks.base import AlertSink

log = logging.getLogger(__name__)


class GpioSink(AlertSink):
    """Sets line ``line`` high for ``pulse_s`` seconds per alert."""

    name = "gpio"

    def __init__(self, sysfs: Path, line: int, pulse_s: float = 0.5) -> None:
        self.value_path = sysfs / f"gpio{line}" / "value"
        self.pulse_s = pulse_s
        self.pulses = 0
        self.available = self.value_path.exists()
        self._failed = False
        self._timer: threading.Timer | None = None
        if not self.available:
            log.warning(
                "the GPIO buzzer is off: %s does not exist (no GPIO here, or line not exported)",
                self.value_path,
            )

    def _write(self, level: str) -> None:
        try:
            self.value_path.write_text(level)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.error("cannot set the GPIO buzzer at %s: %s", self.value_path, exc)
            self._failed = True

    def show(self, alert: Alert) -> None:
        if not self.available:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._write("1")
        self.pulses += 1
        self._timer = threading.Timer(self.pulse_s, self._write, args=("0",))
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._write("0")
