import logging

import pytest
from pydantic import ValidationError

from fleetlink.cloud.records.field_crypto import generate_key_ring_entry
from fleetlink.cloud.settings import CloudSettings, redact_url
from fleetlink.shared.logs import JsonFormatter


def test_production_refuses_the_demo_database_and_anonymous_mqtt(monkeypatch):
    monkeypatch.setenv("FLEETLINK_MODE", "production")
    with pytest.raises(ValidationError, match="FLEETLINK_DATABASE_URL"):
        CloudSettings()
    monkeypatch.setenv("FLEETLINK_DATABASE_URL", "postgresql://fl:pw@db/fleetlink")
    with pytest.raises(ValidationError, match="FLEETLINK_MQTT_URL"):
        CloudSettings()
    monkeypatch.setenv("FLEETLINK_MQTT_URL", "mqtt://ingest:pw2@broker:1883")
    with pytest.raises(ValidationError, match="too weak"):
        CloudSettings()


STRONG_DB = "postgresql://fl:Vq7-kP2x-Lm9r@db/fleetlink"
STRONG_MQTT = "mqtts://ingest:Rt4%Wz8-Nc1y@broker:8883"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("FLEETLINK_DATABASE_URL", "postgresql://fl:a@db/fleetlink", "shorter than 12"),
        ("FLEETLINK_DATABASE_URL", "postgresql://fl:aaaaaaaaaaaaaa@db/x", "different characters"),
        ("FLEETLINK_MQTT_URL", "mqtts://ingest:MyFleetlink-2024@b", "guessable word 'fleetlink'"),
        ("FLEETLINK_MQTT_URL", "mqtt://ingest:Rt4%Wz8-Nc1y@broker.example:1883", "plaintext"),
        ("FLEETLINK_FIELD_KEYS", "", "FLEETLINK_FIELD_KEYS"),
    ],
)
def test_production_refuses_weak_passwords_plaintext_mqtt_and_no_key_ring(
    monkeypatch, variable, value, says
):
    monkeypatch.setenv("FLEETLINK_MODE", "production")
    monkeypatch.setenv("FLEETLINK_DATABASE_URL", STRONG_DB)
    monkeypatch.setenv("FLEETLINK_MQTT_URL", STRONG_MQTT)
    monkeypatch.setenv("FLEETLINK_FIELD_KEYS", generate_key_ring_entry("k1"))
    assert CloudSettings().mode == "production"
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=says):
        CloudSettings()


def test_production_allows_plaintext_mqtt_only_when_told_and_binds_anywhere(monkeypatch):
    monkeypatch.setenv("FLEETLINK_MODE", "production")
    monkeypatch.setenv("FLEETLINK_DATABASE_URL", STRONG_DB)
    monkeypatch.setenv("FLEETLINK_MQTT_URL", "mqtt://ingest:Rt4%Wz8-Nc1y@mosquitto:1883")
    monkeypatch.setenv("FLEETLINK_FIELD_KEYS", generate_key_ring_entry("k1"))
    monkeypatch.setenv("FLEETLINK_HTTP_HOST", "0.0.0.0")  # every API route authenticates
    monkeypatch.setenv("FLEETLINK_MQTT_ALLOW_PLAINTEXT", "true")
    assert CloudSettings().http_host == "0.0.0.0"
    monkeypatch.setenv("FLEETLINK_MQTT_URL", "mqtt://ingest:Rt4%Wz8-Nc1y@127.0.0.1:1883")
    monkeypatch.delenv("FLEETLINK_MQTT_ALLOW_PLAINTEXT")
    assert CloudSettings().mode == "production"  # loopback needs no exception


def test_passwords_never_appear_in_what_is_logged(monkeypatch, caplog):
    monkeypatch.setenv("FLEETLINK_MODE", "demo")
    monkeypatch.setenv("FLEETLINK_DATABASE_URL", "postgresql://fl:hunter2@db:5432/fleetlink")
    monkeypatch.setenv("FLEETLINK_MQTT_URL", "mqtt://ingest:sw0rdfish@broker")
    keys = generate_key_ring_entry("k1")
    monkeypatch.setenv("FLEETLINK_FIELD_KEYS", keys)
    settings = CloudSettings()
    text = repr(settings) + str(settings.describe())
    assert "hunter2" not in text and "sw0rdfish" not in text
    assert keys.split(":")[1] not in text
    assert settings.describe()["database_url"] == "postgresql://fl:***@db:5432/fleetlink"
    assert settings.database_dsn().endswith("fl:hunter2@db:5432/fleetlink")


def test_redact_url_leaves_urls_without_password_alone():
    assert redact_url("mqtt://127.0.0.1:1883") == "mqtt://127.0.0.1:1883"


def test_json_log_lines_carry_level_message_and_extras():
    record = logging.LogRecord("cloud", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    record.device = "dev-1"
    line = JsonFormatter().format(record)
    assert '"message": "hello x"' in line and '"device": "dev-1"' in line
