"""The ingest survives database faults and its own crashes; the API says 503 while the
database is unreachable (issue 16, probes 1 and 8)."""

import asyncio
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from fleetlink.cloud.app import create_app
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.simulator.chaos.tcp_proxy import TcpProxy
from tests.waiting import eventually

from .conftest import AckListener, Fleet, bearer, ingest_settings, member_token
from .helpers import telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def stored_seqs(pool: asyncpg.Pool, device: str) -> list[int]:
    rows = await pool.fetch(
        "SELECT seq FROM ingested_batches WHERE device_id = $1 ORDER BY seq", device
    )
    return [r["seq"] for r in rows]


async def test_ingest_keeps_storing_through_sixty_backend_terminations(
    migrated_db, mqtt_broker, pool, fleet: Fleet, publisher, ack_listener: AckListener
):
    app_name = f"ingest-{uuid.uuid4().hex[:8]}"
    ingest_pool = await asyncpg.create_pool(
        migrated_db, min_size=1, max_size=4, server_settings={"application_name": app_name}
    )
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), ingest_pool)
    await service.start()
    device = fleet.devices[0]
    terminated = 0

    async def publish(seqs: range) -> None:
        for seq in seqs:
            publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, seq), qos=1)
            await asyncio.sleep(0.03)

    async def terminate() -> None:
        nonlocal terminated
        for _ in range(60):
            terminated += await pool.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1) AS t",
                app_name,
            )
            await asyncio.sleep(0.2)

    try:
        await asyncio.gather(publish(range(1, 401)), terminate())
        assert terminated >= 30  # the faults really hit the ingest's connections
        # After the burst, new data is stored within seconds.
        await publish(range(401, 411))
        await ack_listener.wait_for(lambda: set(ack_listener.seqs(device)) >= set(range(1, 411)))
        assert await stored_seqs(pool, device) == list(range(1, 411))
        assert all(h.writer_alive and h.database_ok for h in service.health())
        assert sum(h.restarts for h in service.health()) == 0  # every fault was retried
    finally:
        await service.stop()
        await ingest_pool.close()


async def test_writer_that_crashes_is_restarted_and_commits_the_chunk_it_held(
    migrated_db, mqtt_broker, pool, fleet: Fleet, publisher, ack_listener: AckListener, caplog
):
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    worker = service.workers[0]
    real_write = worker._store.write
    crashes = 0

    async def write_that_fails_twice(conn, items):  # a bug the writer did not foresee
        nonlocal crashes
        if crashes < 2:
            crashes += 1
            raise KeyError("unforeseen")
        return await real_write(conn, items)

    worker._store.write = write_that_fails_twice  # type: ignore[method-assign]
    device = fleet.devices[0]
    try:
        publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
        await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [1])
        assert await stored_seqs(pool, device) == [1]
        health = worker.health()
        assert health.restarts == 2 and health.writer_alive
        assert worker.totals["task_restarts"] == 2
        crash_lines = [r for r in caplog.records if "restart" in r.getMessage()]
        assert len(crash_lines) == 2 and all(r.exc_info for r in crash_lines)
    finally:
        await service.stop()


async def test_api_answers_503_with_retry_after_while_the_database_is_unreachable(
    aiohttp_client, migrated_db, mqtt_broker, fleet: Fleet, pool
):
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    db = urlsplit(migrated_db)
    proxy = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432)
    await proxy.start()
    proxied = migrated_db.replace(db.netloc, f"{db.username}@127.0.0.1:{proxy.port}")
    settings = ingest_settings(proxied, mqtt_broker.url, ingest_workers=0)
    client = await aiohttp_client(create_app(settings), headers=bearer(token))
    try:
        assert (await client.get("/api/v1/vehicles")).status == 200
        await proxy.cut()
        response = await client.get("/api/v1/vehicles")
        assert response.status == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.content_type == "application/problem+json"
        assert (await response.json())["status"] == 503
        ready = await client.get("/readyz")
        assert ready.status == 503 and "Retry-After" in ready.headers
        await proxy.restore()

        async def answers() -> bool:
            return (await client.get("/api/v1/vehicles")).status == 200

        await eventually(answers)
    finally:
        await proxy.cut()
