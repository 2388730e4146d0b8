"""The GPS source: position, ground speed and heading from a GNSS receiver, either NMEA 0183
sentences on a serial port (parsed with ``pynmea2``) or a gpsd's JSON reports.

Emits ``Vehicle.CurrentLocation.Latitude``/``Longitude``/``Heading`` and
``Vehicle.CurrentLocation.Speed`` (km/h) at most ``gps.rate_hz`` times a second, only while
the receiver reports a fix.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pynmea2
import serial

from fleetlink.edge.config import GpsSection
from fleetlink.edge.sources.base import Sample, Source
from fleetlink.shared import signals

log = logging.getLogger(__name__)

KNOTS_TO_KMH = 1.852
MS_TO_KMH = 3.6
_READ_TIMEOUT_S = 1.0
_RETRY_S = 2.0
LATITUDE = signals.by_name("Vehicle.CurrentLocation.Latitude").id
LONGITUDE = signals.by_name("Vehicle.CurrentLocation.Longitude").id
HEADING = signals.by_name("Vehicle.CurrentLocation.Heading").id
SPEED = signals.by_name("Vehicle.CurrentLocation.Speed").id


@dataclass(frozen=True, slots=True)
class Fix:
    latitude: float
    longitude: float
    speed_kmh: float | None
    heading_deg: float | None


def fix_from_nmea(line: str) -> Fix | None:
    """Return the fix in an RMC sentence with status A (valid), else None.

    Raises:
        pynmea2.ParseError: the line is not a well-formed NMEA sentence (bad checksum too).
    """
    sentence = pynmea2.parse(line.strip(), check=True)
    if not isinstance(sentence, pynmea2.types.talker.RMC) or sentence.status != "A":
        return None
    speed = sentence.spd_over_grnd
    course = sentence.true_course
    return Fix(
        sentence.latitude,
        sentence.longitude,
        None if speed is None else float(speed) * KNOTS_TO_KMH,
        None if course is None else float(course),
    )


def fix_from_gpsd(report: dict[str, object]) -> Fix | None:
    """Return the fix in a gpsd TPV report with a 2D or 3D fix, else None."""
    mode = report.get("mode")
    if report.get("class") != "TPV" or not isinstance(mode, int) or mode < 2:
        return None
    lat, lon = report.get("lat"), report.get("lon")
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    speed, track = report.get("speed"), report.get("track")
    return Fix(
        float(lat),
        float(lon),
        float(speed) * MS_TO_KMH if isinstance(speed, int | float) else None,
        float(track) if isinstance(track, int | float) else None,
    )


def _nmea_fixes(settings: GpsSection, counters: dict[str, int]) -> Iterator[Fix | None]:
    assert settings.nmea_port is not None
    with serial.Serial(settings.nmea_port, settings.baudrate, timeout=_READ_TIMEOUT_S) as port:
        while True:
            raw = port.readline()
            if not raw:
                yield None
                continue
            try:
                yield fix_from_nmea(raw.decode("ascii", errors="replace"))
            except pynmea2.ParseError:
                counters["nmea_malformed"] = counters.get("nmea_malformed", 0) + 1


def _gpsd_fixes(settings: GpsSection, counters: dict[str, int]) -> Iterator[Fix | None]:
    assert settings.gpsd is not None
    host, _, port = settings.gpsd.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=_READ_TIMEOUT_S) as sock:
        sock.sendall(b'?WATCH={"enable":true,"json":true}\n')
        stream = sock.makefile("rb")
        while True:
            try:
                line = stream.readline()
            except TimeoutError:
                yield None
                continue
            if not line:
                raise ConnectionError(f"gpsd at {settings.gpsd} closed the connection")
            try:
                report = json.loads(line)
            except ValueError:
                counters["gpsd_malformed"] = counters.get("gpsd_malformed", 0) + 1
                continue
            yield fix_from_gpsd(report) if isinstance(report, dict) else None


def fixes(settings: GpsSection, counters: dict[str, int]) -> Iterator[Fix | None]:
    """Yield a Fix (or None while there is none) for each report the receiver sends.

    Raises:
        OSError: the port or gpsd cannot be opened or goes away.
    """
    if settings.nmea_port is not None:
        return _nmea_fixes(settings, counters)
    return _gpsd_fixes(settings, counters)


def wait_for_fix(settings: GpsSection, timeout_s: float) -> Fix | None:
    """Return the first fix within ``timeout_s``, None if none came.

    Raises:
        OSError: the port or gpsd cannot be opened.
    """
    deadline = time.monotonic() + timeout_s
    counters: dict[str, int] = {}
    for fix in fixes(settings, counters):
        if fix is not None:
            return fix
        if time.monotonic() > deadline:
            return None
    return None


class GpsSource(Source):
    """Reads the receiver in its own thread; reopens it after an error."""

    name = "gps"

    def __init__(self, settings: GpsSection) -> None:
        super().__init__()
        self.settings = settings

    def _where(self) -> str:
        return self.settings.nmea_port or f"gpsd {self.settings.gpsd}"

    def _run(self) -> None:
        period_s = 1.0 / self.settings.rate_hz
        last = 0.0
        while not self.stopping.is_set():
            try:
                for fix in fixes(self.settings, self.counters):
                    if self.stopping.is_set():
                        return
                    now = time.monotonic()
                    if fix is None or now - last < period_s:
                        continue
                    last = now
                    self._emit_fix(fix)
            except (OSError, ValueError) as exc:
                self.counters["reopens"] += 1
                if self.counters["reopens"] == 1:
                    log.warning("GPS receiver on %s: %s; retrying", self._where(), exc)
                self.stopping.wait(_RETRY_S)

    def _emit_fix(self, fix: Fix) -> None:
        time_ms = int(time.time() * 1000)
        values = {
            LATITUDE: fix.latitude,
            LONGITUDE: fix.longitude,
            SPEED: fix.speed_kmh,
            HEADING: fix.heading_deg,
        }
        for signal_id, value in values.items():
            if value is not None:
                self.emit(Sample(signal_id, time_ms, value))
