"""The OBD source against the independent ELM327-emulator package, and recorded replies.

Fault injection (silence, garbage, a vanishing port) runs against the project's simulator in
test_obd_source_simulator.py; reply parsing has its own tests in test_link_replies.py.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import ObdSource
from tests.waiting import wait_until

elm = pytest.importorskip("elm", reason="the ELM327-emulator package is not installed")


class Peer:
    """The third-party ELM327-emulator on a pty, started and stopped by the test."""

    def __init__(self) -> None:
        self.emulator = elm.Elm()
        self.emulator.__enter__()
        wait_until(lambda: bool(self.emulator.get_pty()), 5)
        self.port: str = self.emulator.get_pty()

    def stop(self) -> None:
        self.emulator.terminate()


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    # Its serving thread would otherwise reconfigure root logging and write ./elm.log.
    monkeypatch.setattr(elm.elm, "setup_logging", lambda *args, **kwargs: None)
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
    assert source.counters["silent_replies"] == source.counters["garbled_replies"] == 0


def test_port_that_never_existed_is_retried_with_capped_backoff_and_logged_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    source = ObdSource(settings(str(tmp_path / "no-such-tty")))
    caplog.set_level(logging.INFO, logger="fleetlink.edge.sources.obd_source")
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
