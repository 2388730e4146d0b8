"""A simulated GNSS receiver: NMEA 0183 ``$GPRMC`` and ``$GPGGA`` sentences of a simulated
vehicle's position on a pseudo-terminal, as a USB GPS puck presents them."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import tty
from collections.abc import Callable
from datetime import UTC, datetime

import pynmea2

from fleetlink.simulator.vehicle import VehicleState

logger = logging.getLogger(__name__)
_KNOTS_PER_KMH = 1 / 1.852


def _degrees_minutes(value: float, width: int) -> tuple[str, float]:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees:0{width}d}{minutes:07.4f}", value


def sentences(state: VehicleState, now: datetime) -> list[str]:
    """Return the RMC and GGA sentences (with checksums) of ``state`` at ``now``."""
    lat, _ = _degrees_minutes(state.latitude, 2)
    lon, _ = _degrees_minutes(state.longitude, 3)
    ns = "N" if state.latitude >= 0 else "S"
    ew = "E" if state.longitude >= 0 else "W"
    hhmmss = now.strftime("%H%M%S.%f")[:9]
    rmc = pynmea2.RMC(
        "GP",
        "RMC",
        (
            hhmmss,
            "A",
            lat,
            ns,
            lon,
            ew,
            f"{state.speed_kmh * _KNOTS_PER_KMH:.2f}",
            f"{state.heading_deg:.1f}",
            now.strftime("%d%m%y"),
            "",
            "",
        ),
    )
    gga = pynmea2.GGA(
        "GP", "GGA", (hhmmss, lat, ns, lon, ew, "1", "08", "0.9", "2.0", "M", "46.0", "M", "", "")
    )
    return [str(rmc), str(gga)]


class NmeaGps:
    """Writes the sentences of ``snapshot()`` once per ``period_s`` to a pty from its thread."""

    def __init__(self, snapshot: Callable[[], VehicleState], period_s: float = 1.0) -> None:
        self._snapshot = snapshot
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master_fd: int | None = None
        self._slave_fd: int | None = None
        self.port: str | None = None

    def start(self) -> str:
        """Open the pty, start writing, and return the port path."""
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master_fd, self._slave_fd = master, slave
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(target=self._run, name=f"nmea {self.port}", daemon=True)
        self._thread.start()
        logger.info("GNSS receiver writing NMEA on %s", self.port)
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._master_fd, self._slave_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master_fd = self._slave_fd = None

    def _run(self) -> None:
        while not self._stop.is_set():
            assert self._master_fd is not None
            text = "".join(f"{s}\r\n" for s in sentences(self._snapshot(), datetime.now(UTC)))
            try:
                os.write(self._master_fd, text.encode("ascii"))
            except OSError:
                return  # the pty was closed
            self._stop.wait(self._period_s)
