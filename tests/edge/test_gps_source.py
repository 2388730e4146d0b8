"""The GNSS source: NMEA from the simulator's receiver on a pty becomes position samples."""

from __future__ import annotations

import queue
import time

import pytest

from fleetlink.edge.config import GpsSection, parse_config
from fleetlink.edge.sources import create_sources
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.gps_source import HEADING, LATITUDE, LONGITUDE, GpsSource
from fleetlink.simulator.fleet import SimulatedVehicle

# The RMC example sentence found in NMEA 0183 references (a fix near Munich).
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"


def _drain(samples: queue.Queue[Sample]) -> list[Sample]:
    out = []
    while not samples.empty():
        out.append(samples.get_nowait())
    return out


def test_an_rmc_fix_gives_latitude_longitude_and_heading() -> None:
    source = GpsSource(GpsSection(port="/dev/null"))
    samples: queue.Queue[Sample] = queue.Queue()
    source._queue = samples
    assert source.handle_line(RMC, 1_000) == 3
    got = {s.signal_id: s.value for s in _drain(samples)}
    assert got[LATITUDE] == pytest.approx(48.1173, abs=1e-4)
    assert got[LONGITUDE] == pytest.approx(11.516667, abs=1e-5)
    assert got[HEADING] == pytest.approx(84.4)


def test_no_fix_and_garbage_are_counted_not_emitted() -> None:
    source = GpsSource(GpsSection(port="/dev/null"))
    source._queue = queue.Queue()
    no_fix = "$GPRMC,123519,V,,,,,,,230394,,*"
    assert source.handle_line(no_fix, 1) == 0
    assert source.handle_line("$GPRMC,123519,A,4807.038,N*00", 1) == 0
    assert source.handle_line("\x00\xff garbage", 1) == 0
    assert source.counters["nmea_unparsed"] >= 2


def test_the_simulators_receiver_reaches_the_agent_as_the_route_s_positions() -> None:
    sim = SimulatedVehicle(seed=3, gps=True)
    sim.start()
    try:
        config = parse_config(
            {
                "device": {"id": "d1", "tenant": "t1"},
                "gps": {"port": sim.gps_port},
                "outbox": {"path": "/tmp/unused.sqlite3"},
            }
        )
        (source,) = create_sources(config)
        samples: queue.Queue[Sample] = queue.Queue()
        source.start(samples)
        deadline = time.monotonic() + 5
        got: dict[int, float] = {}
        while time.monotonic() < deadline and LONGITUDE not in got:
            got |= {s.signal_id: s.value for s in _drain(samples)}
            time.sleep(0.05)
        source.stop()
        state = sim.snapshot()
        assert got[LATITUDE] == pytest.approx(state.latitude, abs=2e-3)
        assert got[LONGITUDE] == pytest.approx(state.longitude, abs=2e-3)
        assert source.state == "connected"
    finally:
        sim.stop()
