"""The whole service: create_app with ingest, from an MQTT publish to the REST API."""

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import INGEST

from .conftest import AckListener, Fleet, bearer, ingest_settings, member_token
from .helpers import SPEED, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_published_batch_shows_up_in_the_api_and_readyz_reports_ingest(
    aiohttp_client, migrated_db, mqtt_broker, fleet: Fleet, publisher, ack_listener: AckListener
):
    settings = ingest_settings(migrated_db, mqtt_broker.url)
    async with asyncpg.create_pool(migrated_db, min_size=1, max_size=1) as pool:
        token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    client = await aiohttp_client(create_app(settings), headers=bearer(token))
    assert client.app[INGEST].connected
    ready = await client.get("/readyz")
    assert ready.status == 200
    checks = (await ready.json())["checks"]
    assert checks["database"] == checks["ingest"] == "ok"
    assert checks["ingest_writers_alive"] == "1/1"

    device = fleet.devices[0]
    base = now_ms() - 10_000
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, base_ms=base, values={SPEED: [42.0, 43.5]}),
        qos=1,
    )
    await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
    response = await client.get(f"/api/v1/vehicles/{fleet.vehicles[device]}/signals/latest")
    signals = (await response.json())["signals"]
    assert [(s["name"], s["value"]) for s in signals] == [("Vehicle.Speed", 43.5)]
