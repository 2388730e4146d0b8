"""The alert sinks: the cab display over real HTTP and SSE, espeak-ng writing a WAV, the GPIO
buzzer on a faked sysfs line (the only hardware here that cannot exist), and the sinks that
switch themselves off with one log line."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import uuid
import wave

import pytest

from fleetlink.edge.alerts.alert import Alert
from fleetlink.edge.alerts.settings import AlertsSection
from fleetlink.edge.alerts.sinks import create_sinks
from fleetlink.edge.alerts.sinks.cab_display import CabDisplaySink
from fleetlink.edge.alerts.sinks.gpio import GpioSink
from fleetlink.edge.alerts.sinks.speech import SpeechSink
from tests.waiting import wait_until

ALERT = Alert(
    id=uuid.uuid4(),
    rule="coolant_overheat",
    time_ms=1_700_000_000_000,
    message="Engine overheating: coolant 115 °C. Stop safely & check.",
    severity="critical",
)


def _read_event(stream: http.client.HTTPResponse) -> list[dict[str, object]]:
    data = None
    while True:
        line = stream.readline().decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            return data


def test_cab_display_pushes_alerts_over_sse_and_takes_the_acknowledge_button() -> None:
    acks: list[tuple[uuid.UUID, str]] = []
    sink = CabDisplaySink("127.0.0.1", 0)
    sink.start(lambda alert_id, via: acks.append((alert_id, via)))
    try:
        events = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
        events.request("GET", "/events")
        stream = events.getresponse()
        assert stream.getheader("Content-Type") == "text/event-stream"
        assert _read_event(stream) == []

        sink.show(ALERT)
        (pushed,) = _read_event(stream)
        assert pushed["id"] == str(ALERT.id) and pushed["severity"] == "critical"

        page = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
        page.request("GET", "/")
        html = page.getresponse().read().decode()
        assert "Stop safely &amp; check." in html  # escaped, in the page without JavaScript
        assert f'name="id" value="{ALERT.id}"' in html and "Acknowledge</button>" in html

        page.request(
            "POST",
            "/ack",
            body=f"id={ALERT.id}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = page.getresponse()
        answer.read()
        assert answer.status == 303
        assert acks == [(ALERT.id, "display")]
        assert _read_event(stream) == []  # gone from every screen at once
        page.request("GET", "/alerts.json")
        assert json.loads(page.getresponse().read()) == {"alerts": []}
        page.request("POST", "/ack", body="id=nonsense")
        assert page.getresponse().status == 400
    finally:
        sink.close()


def test_cab_display_listens_on_loopback_by_default() -> None:
    (sink,) = create_sinks(AlertsSection(sinks=["cab_display"]))
    assert isinstance(sink, CabDisplaySink) and sink.address == "127.0.0.1"
    assert [s.name for s in create_sinks(AlertsSection())] == ["terminal", "cab_display"]


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not os.environ.get("CI"),
    reason="espeak-ng is not installed (tests/run.sh installs it; in CI this test runs)",
)
def test_speech_sink_speaks_the_message_into_a_wav_file(tmp_path) -> None:
    sink = SpeechSink("espeak-ng", wav_dir=tmp_path)
    sink.show(ALERT)
    sink.close()
    with wave.open(str(tmp_path / f"{ALERT.id}.wav")) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert seconds > 1.5  # a sentence, not a click


def test_speech_and_gpio_without_their_program_or_line_log_once_and_do_nothing(
    tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    speech = SpeechSink("no-such-speech-program")
    gpio = GpioSink(tmp_path / "no-gpio", line=17)
    for _ in range(3):
        speech.show(ALERT)
        gpio.show(ALERT)
    assert speech.children == [] and gpio.pulses == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "no-such-speech-program is not on PATH" in messages[0]
    assert "gpio17/value does not exist" in messages[1]


def test_gpio_sink_pulses_the_exported_line(tmp_path) -> None:
    line = tmp_path / "gpio17"
    line.mkdir()
    (line / "value").write_text("0")
    sink = GpioSink(tmp_path, line=17, pulse_s=0.2)
    sink.show(ALERT)
    assert (line / "value").read_text() == "1"
    wait_until(lambda: (line / "value").read_text() == "0", 5, "the buzzer to stop")
    sink.close()
