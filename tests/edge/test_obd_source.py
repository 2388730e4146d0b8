"""The OBD source against ELM327 emulators on pseudo-terminals, and python-obd reply decoding."""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import obd
import pytest
from obd.protocols import ISO_15765_4_11bit_500k

from edge.config import ObdSection, PollGroup
from edge.sources.base import Sample
from edge.sources.obd_source import ObdSource, reading_from_response

elm = pytest.importorskip("elm", reason="the ELM327-emulator package is not installed")


def wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class Peer:
    """The third-party ELM327-emulator on a pty, started and stopped by the test."""

    def __init__(self) -> None:
        logging.getLogger().setLevel(logging.WARNING)
        self.emulator = elm.Elm()
        self.emulator.__enter__()
        wait_until(lambda: bool(self.emulator.get_pty()), 5)
        self.port: str = self.emulator.get_pty()

    def stop(self) -> None:
        self.emulator.terminate()


@pytest.fixture
def peer() -> Iterator[Peer]:
    emulator = Peer()
    yield emulator
    emulator.stop()


def settings(port: str, **overrides: object) -> ObdSection:
    values: dict[str, object] = {
        "port": port,
        "baudrate": 38400,
        "timeout_s": 0.3,
        "battery_rate_hz": 4,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        "poll": [
            PollGroup(commands=["RPM", "SPEED"], rate_hz=10),
            PollGroup(commands=["COOLANT_TEMP"], rate_hz=2),
        ],
    }
    values.update(overrides)
    return ObdSection.model_validate(values)


def drain(samples: queue.Queue[Sample]) -> list[Sample]:
    out = []
    while not samples.empty():
        out.append(samples.get_nowait())
    return out


PROTOCOL = ISO_15765_4_11bit_500k(["7E8 06 41 00 BE 3F A8 13"])


@pytest.mark.parametrize(
    ("command", "lines", "expected"),
    [
        ("RPM", ["7E8 04 41 0C 1A F8"], ("ok", 1726.0)),
        ("SPEED", ["7E8 03 41 0D 3C"], ("ok", 60.0)),
        ("COOLANT_TEMP", ["7E8 03 41 05 7B"], ("ok", 83.0)),
        ("RPM", ["NO DATA"], ("null", None)),
        ("RPM", ["ZZ 41 GARBAGE"], ("null", None)),
        ("RPM", [], ("null", None)),
    ],
)
def test_recorded_replies_decode_to_catalog_units(
    command: str, lines: list[str], expected: tuple[str, float | None]
) -> None:
    response = obd.commands[command](PROTOCOL(lines))
    reading = reading_from_response(command, response, 123)
    assert (reading.kind, reading.value) == expected


def test_polls_each_group_at_its_rate_and_reads_battery_voltage(peer: Peer) -> None:
    source = ObdSource(settings(peer.port))
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        wait_until(lambda: source.state == "connected")
        drain(samples)
        time.sleep(2.0)
        got = drain(samples)
    finally:
        source.stop()
    by_signal: dict[int, list[float]] = {}
    for sample in got:
        by_signal.setdefault(sample.signal_id, []).append(sample.value)
    assert set(by_signal) == {0x0C, 0x0D, 0x05, 256}
    assert len(by_signal[0x0C]) >= 3 * len(by_signal[0x05]) >= 3
    assert all(v > 0 for v in by_signal[0x0C])
    assert all(9 < v < 16 for v in by_signal[256])
    assert source.counters["null_replies"] == 0


def test_port_that_never_existed_is_retried_with_capped_backoff_and_logged_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    source = ObdSource(settings(str(tmp_path / "no-such-tty")))
    caplog.set_level(logging.INFO, logger="edge.sources.obd_source")
    source.start(queue.Queue())
    try:
        time.sleep(2.0)
        assert source.state == "disconnected"
    finally:
        source.stop()
    attempts = source.counters["connect_attempts"]
    assert 4 <= attempts <= 12, attempts
    warnings = [r for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(warnings) == 1


def test_adapter_that_goes_silent_is_counted_reconnected_and_recovers(peer: Peer) -> None:
    # python-obd retries an unanswered read about a dozen times, so one round is the limit here.
    quiet = settings(
        peer.port,
        timeout_s=0.1,
        silent_rounds=1,
        battery_rate_hz=0,
        poll=[PollGroup(commands=["RPM"], rate_hz=5)],
    )
    source = ObdSource(quiet)
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        wait_until(lambda: source.state == "connected")
        peer.emulator.threadState = peer.emulator.THREAD.PAUSED
        wait_until(lambda: source.counters["link_silent"] >= 1)
        assert source.counters["null_replies"] >= 1
        assert source.state == "disconnected"
        peer.emulator.threadState = peer.emulator.THREAD.ACTIVE
        wait_until(lambda: source.state == "connected", 30)
        drain(samples)
        wait_until(lambda: not samples.empty())
    finally:
        source.stop()


def test_pty_that_vanishes_is_retried_and_a_new_adapter_is_picked_up(
    tmp_path: Path, peer: Peer
) -> None:
    link = tmp_path / "ttyOBD"
    os.symlink(peer.port, link)
    source = ObdSource(settings(str(link)))
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    replacement = None
    try:
        wait_until(lambda: source.state == "connected")
        peer.stop()
        wait_until(lambda: source.state == "disconnected")
        attempts = source.counters["connect_attempts"]
        wait_until(lambda: source.counters["connect_attempts"] >= attempts + 2)
        replacement = Peer()
        link.unlink()
        os.symlink(replacement.port, link)
        wait_until(lambda: source.state == "connected", 30)
        drain(samples)
        wait_until(lambda: not samples.empty())
    finally:
        source.stop()
        if replacement is not None:
            replacement.stop()
