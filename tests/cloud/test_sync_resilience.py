"""The cloud under faults it cannot fix: it starts without its database or broker, stops acking
while it cannot store (bounded memory, nothing lost), resumes by itself; gaps are listed per
vehicle."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import INGEST
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.registry import issue_device_key
from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.gaps import Gap
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.uplink import Uplink, with_seq
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import EventBatch
from fleetlink.simulator.chaos.tcp_proxy import TcpProxy
from tests.waiting import eventually

from .conftest import AckListener, Fleet, bearer, ingest_settings, make_fleet, member_token
from .helpers import SPEED, events_topic, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _proxy(url: str, default_port: int) -> tuple[TcpProxy, str]:
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    await proxy.start()
    return proxy, url.replace(
        parts.netloc,
        parts.netloc.replace(
            f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname),
            f"127.0.0.1:{proxy.port}",
        ),
    )


async def _ready_checks(client) -> tuple[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    response = await client.get("/readyz")
    return response.status, (await response.json())["checks"]


async def test_serve_without_database_or_broker_logs_once_retries_and_becomes_ready(
    aiohttp_client, migrated_db, mqtt_broker, caplog: pytest.LogCaptureFixture
):
    db_proxy, db_url = await _proxy(migrated_db, 5432)
    mqtt_proxy, mqtt_url = await _proxy(mqtt_broker.url, 1883)
    await db_proxy.cut()
    await mqtt_proxy.cut()
    settings = ingest_settings(db_url, mqtt_url, mqtt_reconnect_min_s=1, mqtt_reconnect_max_s=1)
    caplog.set_level(logging.INFO, logger="fleetlink.cloud.startup")
    client = await aiohttp_client(create_app(settings))
    try:
        status, checks = await _ready_checks(client)
        assert status == 503 and "database" in checks["startup"]
        await asyncio.sleep(3)  # several retries, one line
        lines = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
        assert len(lines) == 1 and "the database at" in lines[0] and "Refused" in lines[0]
        await db_proxy.restore()

        async def waits_for_broker() -> bool:
            return "broker" in (await _ready_checks(client))[1].get("startup", "")

        await eventually(waits_for_broker, 10)
        assert (await _ready_checks(client))[0] == 503
        await mqtt_proxy.restore()

        async def ready() -> bool:
            return (await _ready_checks(client))[0] == 200

        await eventually(ready, 15)
        lines = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
        assert len(lines) == 2 and "the MQTT broker at" in lines[1]
    finally:
        await client.close()
        await db_proxy.stop()
        await mqtt_proxy.stop()


async def test_with_the_database_down_the_ingest_stops_acking_stays_bounded_and_resumes(
    aiohttp_client,
    migrated_db,
    mqtt_broker,
    fleet: Fleet,
    publisher,
    ack_listener: AckListener,
    pool: asyncpg.Pool,
):
    db_proxy, db_url = await _proxy(migrated_db, 5432)
    queue_size = 40
    settings = ingest_settings(
        db_url, mqtt_broker.url, ingest_queue_size=queue_size, ingest_max_batches=10
    )
    client = await aiohttp_client(create_app(settings))
    device = fleet.devices[0]
    try:
        assert (await _ready_checks(client))[0] == 200
        await db_proxy.cut()
        for seq in range(1, 301):
            publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, seq), qos=1)
        await asyncio.sleep(3)
        assert ack_listener.seqs(device) == []  # nothing acked that is not stored
        health = client.app[INGEST].health()
        assert sum(w.in_hand for w in health) <= queue_size  # the broker holds the rest
        status, checks = await _ready_checks(client)
        assert status == 503 and "cannot write to the database" in checks["ingest"]
        await db_proxy.restore()
        await ack_listener.wait_for(
            lambda: set(ack_listener.seqs(device)) == set(range(1, 301)), 30
        )
        stored = await pool.fetchval(
            "SELECT count(*) FROM ingested_batches WHERE device_id = $1", device
        )
        assert stored == 300

        async def ready() -> bool:
            return (await _ready_checks(client))[0] == 200

        await eventually(ready, 10)
    finally:
        await client.close()
        await db_proxy.stop()


def _gap_batch(device: str, seq: int, start_ms: int, samples: int) -> bytes:
    gap = Gap(
        "outbox_cap",
        device_id=device,
        start_ms=start_ms,
        end_ms=start_ms + 60_000,
        signals={12, 13, 14},
        samples=samples,
        batches=2,
    )
    return encode(EventBatch(device_id=device, seq=seq, events=[gap.to_event()]))


async def test_gap_records_are_stored_once_and_listed_per_vehicle_with_paging(
    aiohttp_client,
    migrated_db,
    mqtt_broker,
    fleet: Fleet,
    publisher,
    ack_listener: AckListener,
    pool: asyncpg.Pool,
):
    device = fleet.devices[0]
    vehicle = fleet.vehicles[device]
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    client = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url)), headers=bearer(token)
    )
    base = now_ms() - 3_600_000
    for seq, start in ((1, base), (2, base + 120_000), (2, base + 120_000)):  # 2 twice
        publisher.publish(
            events_topic(fleet.tenant, device), _gap_batch(device, seq, start, 500), qos=1
        )
    await ack_listener.wait_for(lambda: set(ack_listener.seqs(device)) == {1, 2})
    first = await (await client.get(f"/api/v1/vehicles/{vehicle}/gaps?limit=1")).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    gap = first["items"][0]
    assert gap["reason"] == "outbox_cap" and gap["samples"] == 500 and gap["signals"] == "12-14"
    assert gap["device_id"] == device and gap["batches"] == 2
    rest = await (
        await client.get(f"/api/v1/vehicles/{vehicle}/gaps?limit=1&cursor={first['next_cursor']}")
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert rest["items"][0]["start"] < gap["start"]  # newest first by default
    other = await make_fleet(pool)
    outsider = await member_token(pool, other.tenant, "viewer", scopes=("read",))
    response = await client.get(f"/api/v1/vehicles/{vehicle}/gaps", headers=bearer(outsider))
    assert response.status == 404
    missing = await client.get(f"/api/v1/vehicles/{uuid.uuid4()}/gaps")
    assert missing.status == 404
    await client.close()


async def test_an_outbox_restored_from_an_old_copy_loses_nothing_and_stores_nothing_twice(
    migrated_db, mqtt_broker, pool: asyncpg.Pool, fleet: Fleet, tmp_path: Path
):
    device = fleet.devices[0]
    key = await issue_device_key(pool, device)
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    path, backup = tmp_path / "o.db", tmp_path / "backup.db"
    base = now_ms() - 600_000

    def batch(n: int):  # type: ignore[no-untyped-def]
        return lambda seq: telemetry(device, seq, base + n * 10_000, {SPEED: [float(n)] * 3})

    async def drain(outbox: Outbox) -> None:
        uplink = Uplink(
            DeviceSection(id=device, tenant=fleet.tenant, key=key.hex()),
            MqttSection(url=mqtt_broker.url, ack_timeout_s=2.0),
            outbox,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(uplink.run(stop))
        try:
            await eventually(lambda: outbox.confirmed and len(outbox) == 0, 20)
        finally:
            stop.set()
            await task

    try:
        with Outbox(path) as outbox:
            outbox.adopt_high_water(0, with_seq)  # a device that has talked to the cloud
            outbox.add("telemetry", batch(1))
            outbox.add("telemetry", batch(2))
        shutil.copy(path, backup)  # the old copy: seqs 1-2 pending, next seq 3, confirmed
        with Outbox(path) as outbox:
            for n in (3, 4, 5):
                outbox.add("telemetry", batch(n))
            await drain(outbox)  # the cloud holds seqs 1-5
        shutil.copy(backup, path)  # restored: it would give seq 3 to a new batch
        with Outbox(path) as outbox:
            assert outbox.add("telemetry", batch(6)) == 3
            await drain(outbox)
        rows = await pool.fetch(
            "SELECT value, count(*) AS n FROM samples WHERE device_id = $1 GROUP BY value",
            device,
        )
        assert {r["value"]: r["n"] for r in rows} == {float(n): 3 for n in range(1, 7)}
    finally:
        await service.stop()
