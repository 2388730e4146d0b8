import uuid

import psycopg
from typer.testing import CliRunner

from cloud.cli import app


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
