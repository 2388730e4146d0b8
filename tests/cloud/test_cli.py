import asyncio
import uuid

import psycopg
from typer.testing import CliRunner

from fleetlink.cloud.cli import app
from fleetlink.cloud.db.migrate import migrate_url
from tests.conftest import scratch_database


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


def test_operators_add_users_create_and_revoke_tokens(migrated_db: str):
    runner = CliRunner()
    env = {"FLEETLINK_DATABASE_URL": migrated_db, "FLEETLINK_MODE": "demo"}
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    assert runner.invoke(app, ["tenant", "add", tenant], env=env).exit_code == 0
    added = runner.invoke(
        app,
        [
            "user",
            "add",
            "--tenant",
            tenant,
            "--email",
            "Ops@Example.org",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env=env,
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    weak = runner.invoke(
        app,
        [
            "user",
            "add",
            "--tenant",
            tenant,
            "--email",
            "b@example.org",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        env=env,
        input="short\n",
    )
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output
    created = runner.invoke(
        app,
        ["token", "create", "--tenant", tenant, "--email", "ops@example.org", "--scope", "read"],
        env=env,
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert token.startswith("flt_")
    token_id = uuid.UUID(hex=token.split("_")[1])
    with psycopg.connect(migrated_db) as conn:
        scopes, secret_hash = conn.execute(
            "SELECT scopes, secret_hash FROM api_tokens WHERE id = %s", (token_id,)
        ).fetchone()
    assert scopes == ["read"] and token.split("_")[2].encode() not in secret_hash
    revoked = runner.invoke(app, ["token", "revoke", "--tenant", tenant, str(token_id)], env=env)
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    again = runner.invoke(app, ["token", "revoke", "--tenant", tenant, str(token_id)], env=env)
    assert again.exit_code == 1


def test_key_rotation_re_encrypts_personal_fields_and_webhook_secrets_with_the_new_first_key() -> (
    None
):
    with scratch_database() as url:
        asyncio.run(migrate_url(url))
        _rotate_keys_in(url)


def _rotate_keys_in(migrated_db: str) -> None:
    from fleetlink.cloud.notify.webhooks import secret_context
    from fleetlink.cloud.records.field_crypto import FieldCipher, generate_key_ring_entry

    old, new = generate_key_ring_entry("old"), generate_key_ring_entry("new")
    tenant, driver = f"cli-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    context = f"drivers.phone:{tenant}:{driver}"
    token = FieldCipher.from_env_value(old).encrypt("+49 30 1234567", context)
    webhook = uuid.uuid4()
    hook_context = secret_context(tenant, webhook)
    hook_token = FieldCipher.from_env_value(old).encrypt("whsec-signing", hook_context)
    with psycopg.connect(migrated_db) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", (tenant, tenant))
        conn.execute(
            "INSERT INTO drivers (id, tenant_id, name, phone_enc) VALUES (%s, %s, 'Dee', %s)",
            (driver, tenant, token),
        )
        conn.execute(
            "INSERT INTO webhooks (id, tenant_id, url, event_types, secret_enc) "
            "VALUES (%s, %s, 'https://hooks.example/in', '{inbox.opened}', %s)",
            (webhook, tenant, hook_token),
        )
    env = {
        "FLEETLINK_DATABASE_URL": migrated_db,
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_FIELD_KEYS": f"{new},{old}",
    }
    result = CliRunner().invoke(app, ["keys", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    with psycopg.connect(migrated_db) as conn:
        (rotated,) = conn.execute(
            "SELECT phone_enc FROM drivers WHERE id = %s", (driver,)
        ).fetchone()
        (hook,) = conn.execute(
            "SELECT secret_enc FROM webhooks WHERE id = %s", (webhook,)
        ).fetchone()
    assert rotated.startswith("v1.new.") and hook.startswith("v1.new.")
    assert FieldCipher.from_env_value(new).decrypt(rotated, context) == "+49 30 1234567"
    # Webhooks still sign once the old key is gone.
    assert FieldCipher.from_env_value(new).decrypt(hook, hook_context) == "whsec-signing"
    printed = CliRunner().invoke(app, ["keys", "new", "--id", "k9"]).output.strip()
    assert printed.startswith("k9:") and FieldCipher.from_env_value(printed).active == "k9"


def test_device_add_prints_a_key_and_replay_reingests_a_quarantined_batch(migrated_db: str):
    import time

    from fleetlink.shared.codec import encode
    from fleetlink.shared.messages import Series, TelemetryBatch
    from fleetlink.shared.signing import parse_key

    runner = CliRunner()
    env = {"FLEETLINK_DATABASE_URL": migrated_db, "FLEETLINK_MODE": "demo"}
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    device = f"{tenant}-dev"
    assert runner.invoke(app, ["tenant", "add", tenant], env=env).exit_code == 0
    added = runner.invoke(app, ["device", "add", tenant, device], env=env)
    assert added.exit_code == 0, added.output
    key_line = next(line for line in added.stdout.splitlines() if line.startswith("key = "))
    key = parse_key(key_line.split('"')[1])
    with psycopg.connect(migrated_db) as conn:
        stored = conn.execute(
            "SELECT key FROM device_keys WHERE device_id = %s", (device,)
        ).fetchone()
        assert stored == (key,)
        day_ms = 86_400_000
        ahead = int(time.time() * 1000) + 3 * day_ms
        batch = TelemetryBatch(
            device_id=device,
            seq=1,
            base_time_ms=ahead,
            series=[Series(signal_id=13, offsets_ms=[0], values=[42.0])],
        )
        conn.execute(
            "INSERT INTO dead_letters (topic, payload, reason, device_id, seq, quarantined) "
            "VALUES (%s, %s, 'clock', %s, 1, true)",
            (f"fl/v1/{tenant}/{device}/telemetry", encode(batch), device),
        )
    shifted = runner.invoke(app, ["dead-letters", "replay", "--shift-s", str(-3 * 86_400)], env=env)
    assert shifted.exit_code == 0, shifted.output
    assert "replayed 1" in shifted.output
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute(
            "SELECT value FROM samples WHERE device_id = %s", (device,)
        ).fetchall() == [(42.0,)]
    listed = runner.invoke(app, ["dead-letters"], env=env)
    assert "quarantined, replayed" in listed.output
