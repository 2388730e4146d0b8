"""The shipped anomaly model scored with LiteRT, and every way a model can fail to run."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from fleetlink.edge.anomaly.card import ModelUnavailableError, card_path
from fleetlink.edge.anomaly.detector import WindowDetector
from fleetlink.edge.anomaly.runtime import AnomalyModels, load_model
from fleetlink.edge.anomaly.windows import window_vector
from fleetlink.firmware_profiles import load_profile, profile_folder
from fleetlink.shared.messages import Status, VehicleReport
from fleetlink.shared.signals import by_name
from fleetlink.simulator.dataset import DriveSpec, simulate_drive

PROFILE = "fleetlink-sim-car"


@pytest.fixture(scope="module")
def shipped():
    profile = load_profile(PROFILE)
    return profile, load_model(profile.models[0], profile_folder(PROFILE))


@pytest.fixture(scope="module")
def drives():
    normal = simulate_drive(
        DriveSpec(seed=77, style=0.4, road="suburban", ambient_c=12.0, duration_s=900)
    )
    charging = simulate_drive(
        DriveSpec(
            seed=77,
            style=0.4,
            road="suburban",
            ambient_c=12.0,
            duration_s=900,
            fault="charging",
            onset_s=300,
            severity=0.8,
        )
    )
    return normal, charging


def _copy_profile(tmp_path: Path) -> Path:
    folder = profile_folder(PROFILE)
    (tmp_path / "models").mkdir()
    for name in ("sim-car-anomaly.tflite", "sim-car-anomaly.json"):
        shutil.copy(folder / "models" / name, tmp_path / "models" / name)
    text = (folder / f"{PROFILE}.toml").read_text()
    # The copy reads the DBC from the shipped folder.
    text = text.replace('dbc = ["dbc/', f'dbc = ["{folder}/dbc/')
    path = tmp_path / f"{PROFILE}.toml"
    path.write_text(text)
    return path


def test_a_failing_alternator_window_scores_over_the_threshold_and_a_normal_one_under(
    shipped, drives
) -> None:
    _, model = shipped
    normal, charging = drives
    window = model.card.window_rows
    quiet_score, _ = model.scorer.score(window_vector(normal[600 : 600 + window]))
    fault_score, errors = model.scorer.score(window_vector(charging[600 : 600 + window]))
    assert quiet_score < model.card.threshold < fault_score
    top = model.card.features[int(np.argmax(errors))]
    assert top == "Vehicle.LowVoltageBattery.CurrentVoltage"


def test_a_window_with_a_missing_signal_is_counted_not_scored(shipped, drives) -> None:
    _, model = shipped
    _, charging = drives
    detector = WindowDetector(model.card, model.scorer, consecutive=1)
    rows = charging[500:600].astype(np.float64)
    rows[:, 5] = np.nan
    assert [detector.push(r) for r in rows] == [None] * len(rows)
    assert detector.counters["windows_skipped_missing"] > 0
    assert detector.counters["windows_scored"] == 0


def test_a_lasting_fault_is_reported_once_after_consecutive_windows(shipped, drives) -> None:
    _, model = shipped
    _, charging = drives
    detector = WindowDetector(model.card, model.scorer)
    found = [i for i, r in enumerate(charging) if detector.push(r.astype(np.float64))]
    assert len(found) == 1
    assert found[0] > 300
    assert detector.counters["windows_over_threshold"] >= model.card.consecutive


def test_samples_become_an_anomaly_event_naming_the_signal(shipped, drives) -> None:
    profile, _ = shipped
    _, charging = drives
    models = AnomalyModels.for_profile(profile, profile_folder(PROFILE), consecutive=1)
    ids = [by_name(n).id for n in profile.models[0].features]
    events = []
    for second, row in enumerate(charging[400:600]):
        now = 1_700_000_000_000 + second * 1000
        for sid, value in zip(ids, row, strict=True):
            models.observe(sid, now, float(value))
        events += models.tick(now)
    assert events, "no anomaly event"
    event = events[0]
    assert event.type == "anomaly"
    assert event.data["model"] == "sim-car-anomaly"
    assert event.data["signal"] == "Vehicle.LowVoltageBattery.CurrentVoltage"
    assert float(event.data["score"]) > float(event.data["threshold"])


def test_a_quiet_stream_restarts_the_window(shipped, drives) -> None:
    profile, _ = shipped
    _, charging = drives
    models = AnomalyModels.for_profile(profile, profile_folder(PROFILE), consecutive=1)
    ids = [by_name(n).id for n in profile.models[0].features]
    events = []
    for second, row in enumerate(charging[400:600]):
        now = 1_700_000_000_000 + second * 1000
        if second % 20 == 0:  # the link goes quiet for 20 s before every 20th second
            now += 20_000 * (second // 20)
        for sid, value in zip(ids, row, strict=True):
            if second % 20 != 19:
                models.observe(sid, now, float(value))
        events += models.tick(now)
    assert events == []


def test_a_corrupt_model_file_is_refused_by_its_hash(tmp_path: Path, caplog) -> None:
    path = _copy_profile(tmp_path)
    model = tmp_path / "models" / "sim-car-anomaly.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    profile = load_profile(path)
    with caplog.at_level(logging.WARNING):
        models = AnomalyModels.for_profile(profile, tmp_path)
    assert not models
    assert models.status["sim-car-anomaly"].startswith("off: ")
    assert "SHA-256" in models.status["sim-car-anomaly"]
    assert sum("runs without it" in r.getMessage() for r in caplog.records) == 1


def test_a_missing_model_file_leaves_the_agent_without_that_model(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path)
    (tmp_path / "models" / "sim-car-anomaly.tflite").unlink()
    models = AnomalyModels.for_profile(load_profile(path), tmp_path)
    assert not models
    assert "cannot read" in models.status["sim-car-anomaly"]


def test_a_card_of_another_model_is_refused(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path)
    card = card_path(tmp_path / "models" / "sim-car-anomaly.tflite")
    data = json.loads(card.read_text())
    data["features"] = list(reversed(data["features"]))
    card.write_text(json.dumps(data))
    with pytest.raises(ModelUnavailableError, match="belongs to another model"):
        load_model(load_profile(path).models[0], tmp_path)


def test_a_broken_card_is_refused(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path)
    card_path(tmp_path / "models" / "sim-car-anomaly.tflite").write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="not a valid model card"):
        load_model(load_profile(path).models[0], tmp_path)


def test_a_vehicle_without_a_feature_runs_without_the_model(shipped) -> None:
    profile, _ = shipped
    available = set(profile.models[0].features) - {"Vehicle.OBD.EngineLoad"}
    models = AnomalyModels.for_profile(profile, profile_folder(PROFILE), available)
    assert not models
    assert "does not provide Vehicle.OBD.EngineLoad" in models.status["sim-car-anomaly"]


def test_the_status_message_carries_the_models_and_older_clouds_ignore_it() -> None:
    status = Status(
        device_id="dev-1", online=True, time_ms=1, models={"sim-car-anomaly": "off: no file"}
    )
    assert status.models == {"sim-car-anomaly": "off: no file"}
    assert "models" in status.model_dump()


def _agent_config(tmp_path: Path, anomaly: str) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(
        f"""[device]
id = "dev-anomaly"
tenant = "t"
[mqtt]
url = "mqtt://127.0.0.1:1"
[obd]
port = "/dev/null"
[[obd.poll]]
commands = ["RPM", "SPEED", "ENGINE_LOAD", "THROTTLE_POS", "MAF"]
rate_hz = 1.0
{anomaly}
[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
"""
    )
    return path


def test_an_agent_whose_vehicle_lacks_a_feature_reports_the_model_off_in_its_status(
    tmp_path: Path,
) -> None:
    from fleetlink.edge.agent import Agent
    from fleetlink.edge.config import load_config

    config = load_config(_agent_config(tmp_path, '[anomaly]\nprofile = "fleetlink-sim-car"'))
    agent = Agent(config, sources=[])
    try:
        assert not agent.anomaly
        why = agent.uplink.running["models"]["sim-car-anomaly"]
        assert why.startswith("off: ") and "Vehicle.Powertrain.CombustionEngine.ECT" in why
    finally:
        agent.outbox.close()


def test_an_agent_with_a_corrupt_model_keeps_running_without_it(tmp_path: Path) -> None:
    from fleetlink.edge.agent import Agent
    from fleetlink.edge.config import load_config

    profile = _copy_profile(tmp_path)
    (tmp_path / "models" / "sim-car-anomaly.tflite").write_bytes(b"not a model")
    config = load_config(_agent_config(tmp_path, f'[anomaly]\nprofile = "{profile}"'))
    agent = Agent(config, sources=[])
    try:
        assert not agent.anomaly
        assert "SHA-256" in agent.uplink.running["models"]["sim-car-anomaly"]
        agent._score_windows()  # nothing to score, nothing raised
    finally:
        agent.outbox.close()


def test_missing_readings_are_logged_once_when_they_start_and_once_when_they_stop(
    shipped, drives, caplog
) -> None:
    profile, _ = shipped
    normal, _ = drives
    models = AnomalyModels.for_profile(profile, profile_folder(PROFILE))
    ids = [by_name(n).id for n in profile.models[0].features]
    with caplog.at_level(logging.INFO, logger="fleetlink.edge.anomaly.runtime"):
        for second, row in enumerate(normal[300:500]):
            now = 1_700_000_000_000 + second * 1000
            for sid, value in zip(ids, row, strict=True):
                # The coolant reads NaN (a sensor out of range) for 60 s.
                bad = sid == ids[5] and 60 <= second < 120
                models.observe(sid, now, float("nan") if bad else float(value))
            assert models.tick(now) == []
    messages = [r.getMessage() for r in caplog.records]
    assert sum("are not scored" in m and "ECT" in m for m in messages) == 1
    assert sum("every feature present again" in m for m in messages) == 1
    counters = models.detector_counters()["sim-car-anomaly"]
    assert counters["windows_skipped_missing"] >= 10
    assert counters["windows_scored"] > 0


class _DetectingSource:
    """A source that has (or has not yet) picked a profile at connect."""

    def __init__(self) -> None:
        self.profile = ""

    def vehicle_report(self) -> VehicleReport | None:
        return VehicleReport(profile=self.profile) if self.profile else None


def test_with_an_auto_profile_the_models_of_the_profile_picked_at_connect_run(
    tmp_path: Path,
) -> None:
    from fleetlink.edge.agent import Agent
    from fleetlink.edge.config import load_config

    path = tmp_path / "auto.toml"
    path.write_text(
        f"""[device]
id = "d"
tenant = "t"
[mqtt]
url = "mqtt://127.0.0.1:1"
[obd]
port = "/dev/null"
profile = "auto"
[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
"""
    )
    source = _DetectingSource()
    agent = Agent(load_config(path), sources=[source])  # type: ignore[list-item]
    try:
        assert agent.anomaly is None  # nothing known of the vehicle yet
        agent.load_models_of_detected_profile()
        assert agent.anomaly is None
        source.profile = "fleetlink-sim-car"  # the OBD source identified the simulated car
        agent.load_models_of_detected_profile()
        assert agent.anomaly
        assert agent.uplink.running["models"] == {"sim-car-anomaly": "running"}
    finally:
        agent.outbox.close()
