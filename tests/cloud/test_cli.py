import uuid

import psycopg
from typer.testing import CliRunner

from fleetlink.cloud.cli import app


def test_cli_registers_a_tenant_device_and_vehicle_and_assigns_them(migrated_db: str):
    runner = CliRunner()
    env = {"FLEETLINK_DATABASE_URL": migrated_db, "FLEETLINK_MODE": "demo"}
    tenant = f"cli-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output.strip()

    assert run("migrate") == "database schema is up to date"
    run("tenant", "add", tenant)
    run("device", "add", tenant, f"{tenant}-dev")
    vehicle = run("vehicle", "add", tenant, "Van 7", "--vin", "1HGCM82633A004352")
    run("assign", f"{tenant}-dev", vehicle)
    with psycopg.connect(migrated_db) as conn:
        current = conn.execute(
            "SELECT vehicle_id FROM device_assignments WHERE device_id = %s AND valid_to IS NULL",
            (f"{tenant}-dev",),
        ).fetchone()
    assert current == (uuid.UUID(vehicle),)

    refused = runner.invoke(app, ["device", "add", "no-such-tenant", "dev-x"], env=env)
    assert refused.exit_code == 1
    assert "tenant 'no-such-tenant' does not exist" in refused.output


def test_serve_without_settings_refuses_to_start_in_production_mode():
    unset = {"FLEETLINK_MODE": None, "FLEETLINK_DATABASE_URL": None, "FLEETLINK_MQTT_URL": None}
    result = CliRunner().invoke(app, ["serve"], env=unset)
    assert result.exit_code == 2
    assert "FLEETLINK_DATABASE_URL: production mode needs a database URL" in result.output


def test_a_malformed_setting_names_its_environment_variable():
    result = CliRunner().invoke(app, ["migrate"], env={"FLEETLINK_HTTP_PORT": "eighty"})
    assert result.exit_code == 2
    assert "FLEETLINK_HTTP_PORT: Input should be a valid integer" in result.output


def test_operators_can_list_counters_and_dead_letters(migrated_db: str):
    topic = f"fl/v1/cli/dev-{uuid.uuid4().hex[:6]}/telemetry"
    with psycopg.connect(migrated_db) as conn:
        conn.execute(
            "INSERT INTO dead_letters (topic, payload, reason) VALUES (%s, %s, %s)",
            (topic, b"\x01\x00garbage", "msgpack body does not decode"),
        )
        conn.execute(
            "INSERT INTO ingest_counters (name, count) VALUES ('dead_lettered', 1) "
            "ON CONFLICT (name) DO UPDATE SET count = ingest_counters.count + 1"
        )
    env = {"FLEETLINK_DATABASE_URL": migrated_db, "FLEETLINK_MODE": "demo"}
    letters = CliRunner().invoke(app, ["dead-letters", "--limit", "5"], env=env)
    assert letters.exit_code == 0, letters.output
    assert f"{topic} (9 bytes): msgpack body does not decode" in letters.output
    counted = CliRunner().invoke(app, ["counters"], env=env)
    assert counted.exit_code == 0 and "dead_lettered" in counted.output
