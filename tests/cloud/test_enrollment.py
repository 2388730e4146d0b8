"""Enrollment tokens and the enroll endpoint, install reports, swap and removal, and pushed
updates, through the real API on the real database and broker."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.cloud.app import create_app
from fleetlink.shared.codec import decode
from fleetlink.shared.enrollment import Check, InstallReport
from fleetlink.shared.signing import sign
from fleetlink.shared.topics import Kind, topic
from fleetlink.shared.updates import (
    UpdateCommand,
    new_private_hex,
    private_key,
    public_hex,
    public_key,
    refusal,
)
from tests.cloud.conftest import bearer, ingest_settings, make_fleet, member_token

VIN = "1HGCM82633A004352"
SIGNING_KEY = new_private_hex()
pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def setup(aiohttp_client, migrated_db, mqtt_broker, pool):  # type: ignore[no-untyped-def]
    fleet = await make_fleet(pool)
    settings = ingest_settings(
        migrated_db, mqtt_broker.url, ingest_workers=0, update_signing_key=SIGNING_KEY
    )
    token = await member_token(pool, fleet.tenant, "installer")
    client = await aiohttp_client(create_app(settings), headers=bearer(token))
    return client, fleet


async def new_token(client, **body) -> str:  # type: ignore[no-untyped-def]
    response = await client.post("/api/v1/enrollment-tokens", json=body)
    assert response.status == 201, await response.text()
    return str((await response.json())["token"])


async def enroll(client, token: str, **extra):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/enroll", json={"token": token, **extra}, headers={})


async def test_a_token_enrolls_one_device_with_its_own_secrets_and_is_used_up(setup, pool):
    client, fleet = setup
    token = await new_token(client, label="truck 7")
    response = await enroll(client, token, vin=VIN, serial="SN-1", profile="generic-obd2")
    assert response.status == 201, await response.text()
    answer = await response.json()
    assert answer["tenant"] == fleet.tenant
    assert answer["mqtt_username"] == answer["device_id"]
    assert len(answer["mqtt_password"]) >= 40 and len(answer["device_key"]) == 64
    assert answer["high_water"] == 0
    assert answer["update_public_key"] == public_hex(private_key(SIGNING_KEY))
    assert answer["vehicle_name"].endswith(VIN[-6:])  # a new vehicle named from the VIN
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT password_hash FROM device_credentials WHERE device_id = $1",
            answer["device_id"],
        )
        assert stored.startswith("$7$101$") and answer["mqtt_password"] not in stored
        assert not await conn.fetchval(
            "SELECT count(*) FROM enrollment_tokens WHERE digest::text LIKE $1", f"%{token}%"
        )

    again = await enroll(client, token)
    assert again.status == 409
    assert "already used" in (await again.json())["detail"]

    listed = await (await client.get("/api/v1/enrollment-tokens")).json()
    assert [t["state"] for t in listed["items"]] == ["used"]
    assert "token" not in listed["items"][0]


async def test_wrong_expired_and_revoked_tokens_are_refused_with_a_reason(setup, pool):
    client, fleet = setup
    wrong = await enroll(client, "flenr_" + "x" * 43)
    assert wrong.status == 401 and "not known" in (await wrong.json())["detail"]

    expired = await new_token(client, hours=1)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE enrollment_tokens SET created_at = now() - interval '2 hours', "
            "expires_at = now() - interval '1 hour' WHERE tenant_id = $1",
            fleet.tenant,
        )
    response = await enroll(client, expired)
    assert response.status == 401 and "expired" in (await response.json())["detail"]

    revoked = await new_token(client)
    listed = await (await client.get("/api/v1/enrollment-tokens")).json()
    open_id = next(t["id"] for t in listed["items"] if t["state"] == "open")
    assert (await client.delete(f"/api/v1/enrollment-tokens/{open_id}")).status == 200
    response = await enroll(client, revoked)
    assert response.status == 401 and "revoked" in (await response.json())["detail"]

    # Another tenant's member neither sees nor revokes these tokens.
    other = await make_fleet(pool)
    outsider = await member_token(pool, other.tenant, "admin")
    seen = await client.get("/api/v1/enrollment-tokens", headers=bearer(outsider))
    assert (await seen.json())["items"] == []
    gone = await client.delete(f"/api/v1/enrollment-tokens/{open_id}", headers=bearer(outsider))
    assert gone.status == 404


async def test_a_vehicle_token_refuses_another_vin_and_changes_nothing(setup, pool):
    client, fleet = setup
    async with pool.acquire() as conn:
        vehicle = await conn.fetchval(
            "INSERT INTO vehicles (id, tenant_id, name, vin) VALUES ($1, $2, 'Van 3', $3) "
            "RETURNING id",
            uuid.uuid4(),
            fleet.tenant,
            VIN,
        )
    token = await new_token(client, vehicle_id=str(vehicle))
    refused = await enroll(client, token, vin="WVWZZZ1JZXW000001")
    assert refused.status == 409 and "right vehicle" in (await refused.json())["detail"]
    answer = await (await enroll(client, token, vin=VIN)).json()  # the token still works
    assert answer["vehicle_id"] == str(vehicle)


async def test_install_report_is_stored_only_when_signed_with_the_device_key(setup):
    client, _ = setup
    answer = await (await enroll(client, await new_token(client), vin=VIN)).json()
    report = InstallReport(
        device_id=answer["device_id"],
        time_ms=int(time.time() * 1000),
        checks=[Check(name="adapter", outcome="pass"), Check(name="gps", outcome="fail")],
    )
    forged = sign(b"\x01" * 32, report)
    response = await client.post("/api/v1/install-reports", json=forged.model_dump(mode="json"))
    assert response.status == 401
    signed = sign(bytes.fromhex(answer["device_key"]), report)
    response = await client.post("/api/v1/install-reports", json=signed.model_dump(mode="json"))
    assert response.status == 201, await response.text()
    assert (await response.json())["passed"] is False
    shown = await client.get(f"/api/v1/vehicles/{answer['vehicle_id']}/install-reports")
    items = (await shown.json())["items"]
    assert [c["name"] for c in items[0]["report"]["checks"]] == ["adapter", "gps"]


async def test_swap_keeps_the_vehicle_history_continuous_and_revokes_the_old_login(setup, pool):
    client, fleet = setup
    old = await (await enroll(client, await new_token(client), vin=VIN)).json()
    new = await (await enroll(client, await new_token(client))).json()
    response = await client.post(
        f"/api/v1/devices/{old['device_id']}/swap", json={"replacement": new["device_id"]}
    )
    assert response.status == 200, await response.text()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT device_id, valid_from, valid_to FROM device_assignments "
            "WHERE vehicle_id = $1 ORDER BY valid_from",
            uuid.UUID(old["vehicle_id"]),
        )
    assert [r["device_id"] for r in rows] == [old["device_id"], new["device_id"]]
    assert rows[0]["valid_to"] == rows[1]["valid_from"] and rows[1]["valid_to"] is None
    status = await (await client.get(f"/api/v1/devices/{old['device_id']}/status")).json()
    assert status["broker_credential"] == "revoked"
    never = await (await client.get(f"/api/v1/devices/{fleet.devices[0]}/status")).json()
    assert never["broker_credential"] == "none"  # registered by hand, never enrolled
    bindings = await (await client.get(f"/api/v1/devices/{new['device_id']}/bindings")).json()
    assert [b["vehicle_id"] for b in bindings["items"]] == [old["vehicle_id"]]


async def test_removal_revokes_the_login_and_a_removed_device_cannot_re_enroll(setup):
    client, _ = setup
    device = await (await enroll(client, await new_token(client))).json()
    removed = await client.post(f"/api/v1/devices/{device['device_id']}/remove")
    assert removed.status == 200
    assert (await client.post(f"/api/v1/devices/{device['device_id']}/remove")).status == 409
    status = await (await client.get(f"/api/v1/devices/{device['device_id']}/status")).json()
    assert status["broker_credential"] == "revoked" and status["removed_at"]
    again = await enroll(client, await new_token(client), device_id=device["device_id"])
    assert again.status == 409 and "removed" in (await again.json())["detail"]


async def test_a_pushed_update_is_signed_retained_on_the_cmd_topic_and_lists_its_result(
    setup, mqtt_broker, pool
):
    client, fleet = setup
    device = await (await enroll(client, await new_token(client))).json()
    received: list[bytes] = []
    got = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cmd-{uuid.uuid4().hex[:6]}")

    def on_message(_c, _u, message) -> None:  # type: ignore[no-untyped-def]
        if message.payload:
            received.append(bytes(message.payload))
            got.set()

    listener.on_message = on_message
    content = b'id = "fleet-van"\n'
    response = await client.post(
        f"/api/v1/devices/{device['device_id']}/commands",
        json={"kind": "profile", "version": "3", "content_b64": base64.b64encode(content).decode()},
    )
    assert response.status == 201, await response.text()
    command_id = (await response.json())["id"]
    name = topic(fleet.tenant, device["device_id"], Kind.CMD)
    listener.connect(mqtt_broker.host, mqtt_broker.port)
    listener.subscribe(name, qos=1)
    listener.loop_start()
    try:
        assert got.wait(5), "the retained command did not arrive"
    finally:
        listener.loop_stop()
        listener.publish(name, b"", qos=1, retain=True)
        listener.disconnect()
    command = decode(received[0], UpdateCommand)
    assert refusal(public_key(device["update_public_key"]), command, device["device_id"]) is None
    assert command.content() == content

    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO events (id, tenant_id, device_id, ts, type, severity, data) "
            "VALUES ($1, $2, $3, $4, 'update_result', 'info', $5::jsonb)",
            uuid.uuid4(),
            fleet.tenant,
            device["device_id"],
            datetime.now(UTC),
            f'{{"command_id": "{command_id}", "outcome": "applied", "reason": ""}}',
        )
    listed = await (await client.get(f"/api/v1/devices/{device['device_id']}/commands")).json()
    assert [(c["version"], c["outcome"]) for c in listed["items"]] == [("3", "applied")]


async def test_a_refused_enrollment_leaves_no_device_behind(setup, pool: asyncpg.Pool):
    client, fleet = setup
    async with pool.acquire() as conn:
        before = await conn.fetchval(
            "SELECT count(*) FROM devices WHERE tenant_id = $1", fleet.tenant
        )
    token = await new_token(client)
    other = await make_fleet(pool)
    response = await enroll(client, token, device_id=other.devices[0])  # another tenant's id
    assert response.status == 409
    async with pool.acquire() as conn:
        after = await conn.fetchval(
            "SELECT count(*) FROM devices WHERE tenant_id = $1", fleet.tenant
        )
        used = await conn.fetchval(
            "SELECT count(*) FROM enrollment_tokens WHERE tenant_id = $1 AND used_at IS NOT NULL",
            fleet.tenant,
        )
    assert after == before and used == 0
