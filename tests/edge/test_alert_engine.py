"""Nudge then escalate: what the driver is told, what the cloud receives, what survives a
restart, and the contract with other event producers (anomaly events)."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from typer.testing import CliRunner

from fleetlink.edge.alerts.engine import ALERT, ALERT_ACK, COACHING, VEHICLE_ALERT, AlertEngine
from fleetlink.edge.alerts.rules import COOLANT, SPEED
from fleetlink.edge.alerts.settings import AlertsSection, RuleSettings
from fleetlink.edge.alerts.sinks.terminal import TerminalSink
from fleetlink.edge.alerts.store import AlertStore
from fleetlink.edge.cli import app as edge_app
from fleetlink.edge.sources.base import Sample
from fleetlink.firmware_profiles.schema import AlertThresholds
from fleetlink.shared.event_types import ANOMALY
from fleetlink.shared.messages import Event

T0 = 1_700_000_000_000
SETTINGS = AlertsSection(
    cooldown_s=0,
    escalate_after=3,
    escalate_within_min=10,
    rules={"coolant_overheat": RuleSettings(escalate_after=2)},
)


def _engine(path: Path, settings: AlertsSection = SETTINGS) -> tuple[AlertEngine, io.StringIO]:
    out = io.StringIO()
    engine = AlertEngine(settings, AlertThresholds(), path, [TerminalSink(out)])
    engine.start()
    return engine, out


def _overheat(engine: AlertEngine, start_ms: int) -> None:
    for i, value in enumerate((100.0, 115.0, 100.0)):
        engine.observe(Sample(COOLANT, T0 + start_ms + i * 1000, value))


def test_first_overheat_is_a_nudge_with_its_window_and_the_second_escalates(tmp_path) -> None:
    engine, out = _engine(tmp_path / "alerts.sqlite3")
    _overheat(engine, 0)
    (nudge,) = engine.take_events()
    assert (nudge.type, nudge.severity) == (ALERT, "info")
    assert nudge.data["rule"] == "coolant_overheat"
    assert nudge.data["value"] == 115.0 and nudge.data["threshold"] == 110.0
    assert nudge.data["repeats"] == 1
    window = nudge.data["window:Vehicle.Powertrain.CombustionEngine.ECT"]
    assert window == "-1:100 0:115"
    assert "Engine overheating: coolant 115 °C" in out.getvalue()

    _overheat(engine, 60_000)
    second, escalation = engine.take_events()
    assert second.type == ALERT and second.data["repeats"] == 2
    assert (escalation.type, escalation.severity) == (VEHICLE_ALERT, "critical")
    assert escalation.data["alert_id"] == str(second.id)
    assert escalation.data["repeats"] == 2
    assert "reported to your fleet manager" in out.getvalue().splitlines()[-1]
    # The count starts afresh after an escalation.
    _overheat(engine, 120_000)
    assert [e.type for e in engine.take_events()] == [ALERT]
    engine.close()


def test_repeat_counts_survive_a_restart_and_expire_after_the_window(tmp_path) -> None:
    path = tmp_path / "alerts.sqlite3"
    braking = [60.0] * 5 + [60.0 - 5.0 * i for i in range(1, 8)] + [25.0] * 5

    def brake(engine: AlertEngine, start_ms: int) -> list[Event]:
        for i, kmh in enumerate(braking):
            engine.observe(Sample(SPEED, T0 + start_ms + i * 200, kmh))
        return engine.take_events()

    engine, _ = _engine(path)
    assert [e.type for e in brake(engine, 0)] == [ALERT]
    assert [e.type for e in brake(engine, 60_000)] == [ALERT]
    engine.close()
    engine, _ = _engine(path)  # the agent restarted: two harsh brakes are remembered
    events = brake(engine, 120_000)
    assert [e.type for e in events] == [ALERT, COACHING]
    assert events[1].severity == "warning" and events[1].data["rule"] == "harsh_brake"
    # Two more, but the first lies outside the ten-minute window: no escalation.
    brake(engine, 200_000)
    assert [e.type for e in brake(engine, 200_000 + 11 * 60_000)] == [ALERT]
    engine.close()


def test_anomaly_events_from_another_producer_are_shown_counted_and_passed_on(tmp_path) -> None:
    settings = AlertsSection(escalate_after=2, escalate_within_min=60)
    engine, out = _engine(tmp_path / "alerts.sqlite3", settings)
    anomalies = [
        Event(
            id=uuid.uuid4(),
            time_ms=T0 + i * 1000,
            type=ANOMALY,
            severity="warning",
            data={"signal": "Vehicle.Powertrain.CombustionEngine.ECT", "score": 0.93},
        )
        for i in range(2)
    ]
    engine.observe_event(anomalies[0])
    assert engine.take_events() == [anomalies[0]]  # unchanged, its own id
    assert "Unusual vehicle behaviour in ECT" in out.getvalue()
    engine.observe_event(anomalies[1])
    passed, escalation = engine.take_events()
    assert passed == anomalies[1]
    assert escalation.type == VEHICLE_ALERT and escalation.data["rule"] == "anomaly"
    # Other events are not the engine's business.
    ignition = Event(id=uuid.uuid4(), time_ms=T0, type="ignition_off")
    engine.observe_event(ignition)
    assert engine.take_events() == [ignition]
    engine.close()


def test_acknowledgements_from_the_display_and_the_terminal_become_events(tmp_path) -> None:
    config = tmp_path / "device.toml"
    config.write_text('[device]\nid = "dev-1"\ntenant = "t"\n[outbox]\npath = "outbox.sqlite3"\n')
    engine, out = _engine(tmp_path / "alerts.sqlite3")
    _overheat(engine, 0)
    _overheat(engine, 60_000)
    first, second = (e.id for e in engine.take_events() if e.type == ALERT)

    engine.request_ack(first, "display")  # what the cab display's button does
    result = CliRunner().invoke(edge_app, ["alerts", "ack", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert str(second) in result.output  # the newest open alert
    engine.poll()
    acks = engine.take_events()
    assert {(e.type, e.data["alert_id"], e.data["via"]) for e in acks} == {
        (ALERT_ACK, str(first), "display"),
        (ALERT_ACK, str(second), "terminal"),
    }
    assert f"acknowledged {second}" in out.getvalue()
    engine.poll()
    assert engine.take_events() == []  # each acknowledgement is sent once
    again = CliRunner().invoke(edge_app, ["alerts", "ack", "--config", str(config), str(first)])
    assert again.exit_code == 1
    listed = CliRunner().invoke(edge_app, ["alerts", "list", "--config", str(config)])
    assert listed.output.count("acknowledged") == 2
    engine.close()
    with AlertStore(tmp_path / "alerts.sqlite3") as store:
        assert {a.acked_via for a in store.recent()} == {"display", "terminal"}


def test_a_failing_sink_is_counted_and_does_not_stop_the_others(tmp_path) -> None:
    class Broken(TerminalSink):
        name = "broken"

        def show(self, alert) -> None:  # type: ignore[no-untyped-def]
            raise OSError("display unplugged")

    out = io.StringIO()
    engine = AlertEngine(
        SETTINGS, AlertThresholds(), tmp_path / "a.sqlite3", [Broken(), TerminalSink(out)]
    )
    engine.start()
    _overheat(engine, 0)
    _overheat(engine, 60_000)
    assert engine.counters["sink_failures_broken"] == 2
    assert out.getvalue().count("ALERT") == 2
    engine.close()


def test_a_failing_alert_record_loses_only_the_count_not_the_alert(tmp_path, caplog) -> None:
    import sqlite3

    path = tmp_path / "alerts.sqlite3"
    engine, out = _engine(path)
    with sqlite3.connect(path) as other:  # the file is damaged under the running agent
        other.execute("DROP TABLE occurrences")
    _overheat(engine, 0)
    _overheat(engine, 60_000)
    assert [e.type for e in engine.take_events()] == [ALERT, ALERT]
    assert out.getvalue().count("Engine overheating") == 2
    assert engine.counters["alert_store_failures"] == 2
    assert sum("alert record" in r.getMessage() for r in caplog.records) == 1
    engine.close()
