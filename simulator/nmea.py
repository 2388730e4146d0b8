"""A GNSS receiver on a pseudo-terminal: NMEA 0183 RMC and GGA sentences once a second from a
simulated vehicle's position (``simulator/route.py`` moves it), as a USB GPS puck sends them.

Like a real serial receiver it does not wait for a reader: sentences nobody reads are
discarded once about a second's worth is waiting, so a reader always gets the current fix.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import termios
import threading
import tty
from collections.abc import Callable
from datetime import UTC, datetime

import pynmea2

from fleetlink.simulator.vehicle import VehicleState

logger = logging.getLogger(__name__)

KMH_TO_KNOTS = 1 / 1.852
_UNREAD_LIMIT = 512


def _degrees_minutes(value: float, width: int) -> str:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees:0{width}d}{minutes:07.4f}"


def sentences(state: VehicleState, now: datetime) -> list[str]:
    """Return the RMC and GGA sentences (with checksums, CRLF-terminated) for ``state``."""
    lat = _degrees_minutes(state.latitude, 2)
    lon = _degrees_minutes(state.longitude, 3)
    ns = "N" if state.latitude >= 0 else "S"
    ew = "E" if state.longitude >= 0 else "W"
    hhmmss = now.strftime("%H%M%S.00")
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
            f"{state.speed_kmh * KMH_TO_KNOTS:.2f}",
            f"{state.heading_deg:.1f}",
            now.strftime("%d%m%y"),
            "",
            "",
            "A",
        ),
    )
    gga = pynmea2.GGA(
        "GP", "GGA", (hhmmss, lat, ns, lon, ew, "1", "08", "0.9", "2.0", "M", "46.0", "M", "", "")
    )
    return [f"{rmc}\r\n", f"{gga}\r\n"]


class NmeaEmitter:
    """Writes ``sentences(snapshot())`` to a pty every ``period_s``; ``start`` returns its path."""

    def __init__(self, snapshot: Callable[[], VehicleState], period_s: float = 1.0) -> None:
        self.snapshot = snapshot
        self.period_s = period_s
        self.port: str | None = None
        self._fds: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds = (master, slave)
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(target=self._run, name=f"nmea {self.port}", daemon=True)
        self._thread.start()
        logger.info("NMEA receiver on %s", self.port)
        return self.port

    def _unread(self, fd: int) -> int:
        raw = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", raw)[0])

    def _run(self) -> None:
        assert self._fds is not None
        master, slave = self._fds
        while not self._stop.is_set():
            if self._unread(slave) > _UNREAD_LIMIT:
                termios.tcflush(slave, termios.TCIFLUSH)
            data = "".join(sentences(self.snapshot(), datetime.now(UTC))).encode()
            with contextlib.suppress(BlockingIOError):
                os.write(master, data)
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._fds is not None:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = None
