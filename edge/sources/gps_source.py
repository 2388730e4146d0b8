"""A GNSS receiver on a serial port speaking NMEA 0183 (a USB GPS puck, a modem's NMEA port).

Reads lines, parses them with pynmea2, and emits latitude, longitude and heading from each
``RMC`` sentence that reports a valid fix ('A'). Lines that do not parse are counted, never
fatal; the port is reopened with backoff when it goes away.
"""

from __future__ import annotations

import logging
import time

import pynmea2
import serial

from fleetlink.edge.config import GpsSection
from fleetlink.edge.sources.base import Sample, Source
from fleetlink.shared.signals import by_name

log = logging.getLogger(__name__)

LATITUDE = by_name("Vehicle.CurrentLocation.Latitude").id
LONGITUDE = by_name("Vehicle.CurrentLocation.Longitude").id
HEADING = by_name("Vehicle.CurrentLocation.Heading").id


class GpsSource(Source):
    name = "gps"

    def __init__(self, config: GpsSection) -> None:
        super().__init__()
        self.config = config

    def handle_line(self, line: str, now_ms: int) -> int:
        """Emit the samples of one NMEA line; return how many were emitted."""
        try:
            sentence = pynmea2.parse(line.strip(), check=True)
        except pynmea2.ParseError:
            self.counters["nmea_unparsed"] += 1
            return 0
        if not isinstance(sentence, pynmea2.RMC):
            return 0
        if sentence.status != "A" or sentence.latitude is None or not sentence.lat:
            self.counters["nmea_no_fix"] += 1
            return 0
        samples = [
            Sample(LATITUDE, now_ms, float(sentence.latitude)),
            Sample(LONGITUDE, now_ms, float(sentence.longitude)),
        ]
        if sentence.true_course is not None:
            samples.append(Sample(HEADING, now_ms, float(sentence.true_course)))
        for sample in samples:
            self.emit(sample)
        return len(samples)

    def _run(self) -> None:
        delay = self.config.reconnect_min_s
        while not self.stopping.is_set():
            try:
                with serial.Serial(self.config.port, self.config.baudrate, timeout=1.0) as port:
                    self._state = "connected"
                    log.info("reading NMEA from %s", self.config.port)
                    delay = self.config.reconnect_min_s
                    while not self.stopping.is_set():
                        raw = port.readline()
                        if raw:
                            self.handle_line(
                                raw.decode("ascii", "replace"), int(time.time() * 1000)
                            )
            except (serial.SerialException, OSError) as exc:
                if self._state != "disconnected":
                    log.warning("GNSS receiver on %s: %s; retrying", self.config.port, exc)
                self._state = "disconnected"
                self.counters["reconnects"] += 1
                self.stopping.wait(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
