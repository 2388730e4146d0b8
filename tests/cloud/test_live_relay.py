"""Live updates across processes: what one process's ingest commits reaches the clients of
another through PostgreSQL NOTIFY, whole, and a lost listening connection is said, not hidden."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import aiohttp
import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import LIVE_HUB, LIVE_LISTENER, LIVE_OUT
from fleetlink.cloud.live import relay as relay_module
from fleetlink.cloud.live.hub import LiveFilter, LiveHub
from fleetlink.cloud.live.relay import (
    LiveListener,
    PartsDecoder,
    PostgresRelay,
    RelayedMessage,
    encode_parts,
)
from fleetlink.cloud.replicas import ReplicaError, replica_environments

from .conftest import Fleet, bearer, ingest_settings, member_token
from .helpers import RPM, SPEED, now_ms, telemetry, telemetry_topic
from .sse import read_events

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)


@given(
    data=st.dictionaries(st.text(max_size=20), json_values, max_size=8),
    blob=st.text(max_size=30_000),
    signals=st.lists(st.text(min_size=1, max_size=30), max_size=5),
)
def test_a_message_of_any_size_is_rebuilt_whole_from_its_notifications(
    data: dict, blob: str, signals: list[str]
) -> None:
    message = RelayedMessage("tenant-ü", "signals", {**data, "blob": blob}, "v1", tuple(signals))
    parts = encode_parts("p.1", message)
    assert all(len(part.encode()) < 8000 for part in parts)  # NOTIFY's payload limit
    decoder = PartsDecoder()
    rebuilt = [decoder.feed(part) for part in parts]
    assert rebuilt[:-1] == [None] * (len(parts) - 1)
    assert rebuilt[-1] == message
    assert not decoder.counters


def test_malformed_or_incomplete_notifications_are_counted_not_raised() -> None:
    decoder = PartsDecoder()
    assert decoder.feed("garbage") is None
    assert decoder.feed("id 0 1 {not json") is None
    parts = encode_parts("p.2", RelayedMessage("t", "event", {"x": "y" * 20_000}, None, ()))
    assert decoder.feed(parts[1]) is None  # its first part never came
    assert decoder.counters["relay_malformed"] == 3


def test_replicas_relay_live_updates_and_only_the_first_ingests() -> None:
    first, second, third = replica_environments({"PATH": "/bin"}, 3)
    assert {e["FLEETLINK_LIVE_RELAY"] for e in (first, second, third)} == {"postgres"}
    assert "FLEETLINK_INGEST_WORKERS" not in first
    assert second["FLEETLINK_INGEST_WORKERS"] == third["FLEETLINK_INGEST_WORKERS"] == "0"
    assert second["FLEETLINK_BACKGROUND_JOBS"] == "false"
    with pytest.raises(ReplicaError):
        replica_environments({}, 1)


async def _wait(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_batch_ingested_by_one_process_reaches_the_clients_of_another(
    aiohttp_client, migrated_db, mqtt_broker, pool: asyncpg.Pool, fleet: Fleet, publisher
) -> None:
    ingesting = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, live_relay="postgres"))
    )
    api_only = await aiohttp_client(
        create_app(
            ingest_settings(
                migrated_db,
                mqtt_broker.url,
                live_relay="postgres",
                ingest_workers=0,
                background_jobs=False,
            )
        )
    )
    listener = api_only.app[LIVE_LISTENER]
    await asyncio.wait_for(listener.listening.wait(), 10)
    await asyncio.wait_for(ingesting.app[LIVE_LISTENER].listening.wait(), 10)
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    device = fleet.devices[0]
    streams = [await c.get("/api/v1/live", headers=bearer(token)) for c in (api_only, ingesting)]
    await _wait(lambda: all(c.app[LIVE_HUB].subscriber_count() >= 1 for c in (api_only, ingesting)))
    # The relay learns within half a second that someone watches the tenant (D104).
    await _wait(lambda: ingesting.app[LIVE_OUT].watches(fleet.tenant))

    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 1, now_ms() - 1000, {SPEED: [51.0], RPM: [2100.0]}),
        qos=1,
    )
    for stream in streams:
        (event,) = await read_events(stream, 1)
        assert event.event == "signals" and event.data["seq"] == 1
        assert event.data["vehicle_id"] == str(fleet.vehicles[device])
        assert event.data["signals"]["Vehicle.Speed"]["value"] == 51.0

    # A message far above NOTIFY's 8,000-byte limit arrives whole, in order with the next.
    big = {"notes": "n" * 50_000}
    ingesting.app[LIVE_OUT].publish(fleet.tenant, "inbox", big)
    ingesting.app[LIVE_OUT].publish(fleet.tenant, "inbox", {"after": True})
    first, second = await read_events(streams[0], 2)
    assert first.data == big and second.data == {"after": True}

    # The listening connection is lost: open streams end, and it listens again by itself.
    async with pool.acquire() as conn:
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = $1",
            listener.server_pid,
        )
    assert terminated == 1
    assert await asyncio.wait_for(streams[0].content.read(), 10) is not None
    await _wait(lambda: api_only.app[LIVE_HUB].counters["restarted"] == 1)
    await asyncio.wait_for(listener.listening.wait(), 10)
    resumed = await api_only.get("/api/v1/live", headers=bearer(token))
    await _wait(lambda: api_only.app[LIVE_HUB].subscriber_count() >= 1)
    publisher.publish(
        telemetry_topic(fleet.tenant, device),
        telemetry(device, 2, now_ms() - 500, {SPEED: [52.0]}),
        qos=1,
    )
    (event,) = await read_events(resumed, 1)
    assert event.data["seq"] == 2
    for stream in (*streams, resumed):
        stream.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_the_relay_sends_only_what_a_listening_process_watches(
    migrated_db, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "_WATCH_REFRESH_S", 0.2)
    tenant = f"watch-{uuid.uuid4().hex[:8]}"
    hub = LiveHub(idle_grace_s=0)
    listener = LiveListener(migrated_db, hub)
    relay = PostgresRelay(migrated_db)
    listener.start()
    relay.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        await _wait(lambda: relay._watched is not None)
        assert not relay.watches(tenant)  # no process has a client of it
        client = hub.subscribe(tenant, LiveFilter())
        await _wait(lambda: relay.watches(tenant), 5)  # written at once, read within 0.5 s
        assert await _watching(pool, tenant) == 1
        relay.publish(tenant, "inbox", {"n": 1})
        message = await asyncio.wait_for(client.next(), 10)
        assert message is not None and json.loads(message.text) == {"n": 1}
        hub.unsubscribe(client)  # no grace here: the next refresh drops the tenant
        await _wait(lambda: not relay.watches(tenant), 5)
        assert await _watching(pool, tenant) == 0
    finally:
        await relay.stop()
        await listener.stop()


async def _watching(pool: asyncpg.Pool, tenant: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM live_watchers WHERE tenant_id = $1 AND expires_at > now()",
            tenant,
        )
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.asyncio(loop_scope="session")
async def test_serve_with_two_processes_gives_every_client_the_live_update(
    migrated_db, mqtt_broker, pool: asyncpg.Pool, fleet: Fleet, publisher
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_DATABASE_URL": migrated_db,
        "FLEETLINK_MQTT_URL": mqtt_broker.url,
        "FLEETLINK_INGEST_MAX_WAIT_MS": "5",
        "FLEETLINK_MQTT_SHARE_GROUP": f"replicas-{port}",
    }
    command = [sys.executable, "-m", "fleetlink", "cloud", "serve", "--processes", "2"]
    server = subprocess.Popen([*command, "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    device = fleet.devices[0]
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.get(f"{base}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "serve --processes 2 did not get ready"
                await asyncio.sleep(0.2)
            # Connections are spread by the kernel; with twelve, both processes get some.
            streams = []
            for _ in range(12):
                async with asyncio.timeout(10):
                    streams.append(await http.get(f"{base}/api/v1/live", headers=bearer(token)))
            deadline = time.monotonic() + 30
            # A process with streams listens, then says it watches the tenant (D104), at once
            # for its first stream; the ingesting process reads that every 0.5 s.
            while await _watching(pool, fleet.tenant) < 1:
                assert time.monotonic() < deadline, "no replica watches the tenant"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)
            publisher.publish(
                telemetry_topic(fleet.tenant, device),
                telemetry(device, 1, now_ms() - 1000, {SPEED: [33.0]}),
                qos=1,
            )
            for stream in streams:
                (event,) = await read_events(stream, 1, timeout_s=15)
                assert event.data["signals"]["Vehicle.Speed"]["value"] == 33.0
                stream.close()
    finally:
        server.terminate()
        assert server.wait(30) == 0
