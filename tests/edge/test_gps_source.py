"""The GPS source: NMEA sentences and gpsd reports decoded to position, speed and heading, and
the source reading the simulator's NMEA receiver on a pseudo-terminal."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pynmea2
import pytest

from fleetlink.edge.config import GpsSection
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.gps_source import (
    HEADING,
    LATITUDE,
    LONGITUDE,
    SPEED,
    GpsSource,
    fix_from_gpsd,
    fix_from_nmea,
    wait_for_fix,
)
from fleetlink.shared import signals
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.nmea import NmeaEmitter, sentences

# The RMC example of the NMEA 0183 reference (48°07.038'N 11°31.000'E, 22.4 kn, 84.4°).
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
# A u-blox receiver before its first fix: status V, empty fields.
RMC_NO_FIX = "$GPRMC,,V,,,,,,,,,,N*53"


def test_an_rmc_sentence_gives_position_speed_in_kmh_and_heading() -> None:
    fix = fix_from_nmea(RMC)
    assert fix is not None
    assert fix.latitude == pytest.approx(48.1173)
    assert fix.longitude == pytest.approx(11.516667, abs=1e-6)
    assert fix.speed_kmh == pytest.approx(22.4 * 1.852)
    assert fix.heading_deg == pytest.approx(84.4)


def test_no_fix_and_other_sentences_give_nothing_and_a_bad_checksum_raises() -> None:
    assert fix_from_nmea(RMC_NO_FIX) is None
    assert (
        fix_from_nmea("$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47") is None
    )
    with pytest.raises(pynmea2.ParseError):
        fix_from_nmea(RMC[:-2] + "00")


def test_gpsd_tpv_reports_give_a_fix_only_in_2d_or_3d_mode() -> None:
    tpv = {"class": "TPV", "mode": 3, "lat": 52.37, "lon": 4.89, "speed": 10.0, "track": 90.0}
    fix = fix_from_gpsd(tpv)
    assert fix is not None and fix.speed_kmh == pytest.approx(36.0) and fix.heading_deg == 90.0
    assert fix_from_gpsd({**tpv, "mode": 1}) is None
    assert fix_from_gpsd({"class": "SKY"}) is None


def test_the_simulators_sentences_decode_to_its_position() -> None:
    vehicle = SimulatedVehicle(seed=3)
    for _ in range(50):
        vehicle.tick()
    state = vehicle.snapshot()
    fix = fix_from_nmea(sentences(state, datetime.now(UTC))[0])
    assert fix is not None
    assert fix.latitude == pytest.approx(state.latitude, abs=2e-6)
    assert fix.longitude == pytest.approx(state.longitude, abs=2e-6)
    assert fix.speed_kmh == pytest.approx(state.speed_kmh, abs=0.02)


def test_the_source_reads_the_simulated_receiver_and_emits_catalog_signals() -> None:
    assert {signals.by_id(i).name for i in (LATITUDE, LONGITUDE, HEADING)} == {
        "Vehicle.CurrentLocation.Latitude",
        "Vehicle.CurrentLocation.Longitude",
        "Vehicle.CurrentLocation.Heading",
    }
    with SimulatedVehicle(seed=1) as vehicle:
        receiver = NmeaEmitter(vehicle.snapshot, period_s=0.2)
        port = receiver.start()
        samples: queue.Queue[Sample] = queue.Queue()
        source = GpsSource(GpsSection(nmea_port=port, rate_hz=5))
        try:
            source.start(samples)
            seen: dict[int, float] = {}
            deadline = time.monotonic() + 5
            while len(seen) < 4 and time.monotonic() < deadline:
                try:
                    sample = samples.get(timeout=0.5)
                except queue.Empty:
                    continue
                seen[sample.signal_id] = sample.value
        finally:
            source.stop()
            receiver.stop()
        assert set(seen) == {LATITUDE, LONGITUDE, SPEED, HEADING}
        assert seen[LATITUDE] == pytest.approx(vehicle.snapshot().latitude, abs=0.01)


@pytest.fixture
def gpsd() -> Iterator[str]:
    """A gpsd speaking its JSON protocol on a loopback port: VERSION, then TPV reports."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b'{"class":"VERSION","release":"3.22"}\n')
            assert conn.recv(100).startswith(b"?WATCH=")
            conn.sendall(json.dumps({"class": "TPV", "mode": 1}).encode() + b"\n")
            while not stop.is_set():
                tpv = {"class": "TPV", "mode": 2, "lat": 52.1, "lon": 5.2, "speed": 1.0}
                conn.sendall(json.dumps(tpv).encode() + b"\n")
                stop.wait(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{port}"
    stop.set()
    server.close()


def test_a_fix_is_read_from_gpsd(gpsd: str) -> None:
    fix = wait_for_fix(GpsSection(gpsd=gpsd), timeout_s=5)
    assert fix is not None and (fix.latitude, fix.longitude) == (52.1, 5.2)
