"""Two ingest processes (``fleetlink cloud ingest --processes 2``) on one shared subscription:
both get work, every batch is stored once even when devices resend, acks reach the devices,
each process's /metrics counts what it committed, and what they commit reaches the live
clients of an API process that runs no ingest of its own (through PostgreSQL NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import asyncpg

from fleetlink.cloud.app import create_app
from fleetlink.cloud.app_keys import LIVE_HUB, LIVE_LISTENER
from fleetlink.shared.codec import encode
from fleetlink.shared.topics import Kind, topic
from fleetlink.simulator.bench.ingest import make_batch
from fleetlink.simulator.bench.services import ready
from tests.cloud.conftest import (
    bearer,
    ingest_settings,
    listen_for_acks,
    make_fleet,
    member_token,
    mqtt_client,
)
from tests.cloud.sse import read_events
from tests.conftest import free_port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _messages(text: str) -> float:
    found = re.findall(r"^fleetlink_ingest_messages_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


async def test_two_ingest_processes_split_the_load_and_store_each_batch_once(
    migrated_db: str, mqtt_broker, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=2)
    fleet = await make_fleet(pool, devices=20)
    api = await aiohttp_client(
        create_app(ingest_settings(migrated_db, mqtt_broker.url, ingest_workers=0))
    )
    await asyncio.wait_for(api.app[LIVE_LISTENER].listening.wait(), 10)
    token = await member_token(pool, fleet.tenant, "viewer", scopes=("read",))
    stream = await api.get("/api/v1/live", headers=bearer(token))
    while api.app[LIVE_HUB].subscriber_count() < 1:
        await asyncio.sleep(0.02)
    port = free_port()
    while not all(_port_free(p) for p in (port, port + 1)):
        port = free_port()
    env = {
        **os.environ,
        "FLEETLINK_MODE": "demo",
        "FLEETLINK_DATABASE_URL": migrated_db,
        "FLEETLINK_MQTT_URL": f"mqtt://{mqtt_broker.host}:{mqtt_broker.port}",
        "FLEETLINK_MQTT_SHARE_GROUP": f"procs-{uuid.uuid4().hex[:8]}",
        "FLEETLINK_MQTT_CLIENT_ID": f"test-procs-{uuid.uuid4().hex[:6]}",
        "FLEETLINK_INGEST_METRICS_PORT": str(port),
        "FLEETLINK_INGEST_MAX_WAIT_MS": "5",
        "FLEETLINK_INGEST_MAX_BATCHES": "5",
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "fleetlink", "cloud", "ingest", "--processes", "2"], env=env
    )
    listener, ack_client = listen_for_acks(mqtt_broker, fleet.tenant)
    publisher = mqtt_client(mqtt_broker)
    try:
        deadline = time.monotonic() + 60
        while not (ready(port) and ready(port + 1)):
            assert parent.poll() is None, "the ingest supervisor exited"
            assert time.monotonic() < deadline, "the ingest processes did not become ready"
            await asyncio.sleep(0.2)
        start_ms = int(time.time() * 1000) - 60_000
        sent = 0
        for seq in range(1, 11):
            for device in fleet.devices:
                payload = encode(make_batch(device, seq, start_ms + seq * 1000, 20))
                name = topic(fleet.tenant, device, Kind.TELEMETRY)
                # Every batch twice: the resend of a device whose ack was lost.
                publisher.publish(name, payload, qos=1)
                publisher.publish(name, payload, qos=1)
                sent += 1
            await asyncio.sleep(0.05)
        expected = {(d, s) for d in fleet.devices for s in range(1, 11)}
        await listener.wait_for(
            lambda: {(d, s) for d in fleet.devices for s in listener.seqs(d)} >= expected, 60
        )
        stored = await pool.fetch(
            "SELECT device_id, seq, count(*) AS n FROM ingested_batches "
            "WHERE tenant_id = $1 GROUP BY 1, 2",
            fleet.tenant,
        )
        assert {(r["device_id"], r["seq"]) for r in stored} == expected
        assert all(r["n"] == 1 for r in stored)
        samples = await pool.fetchval(
            "SELECT count(*) FROM samples WHERE tenant_id = $1", fleet.tenant
        )
        assert samples == sent * 20  # make_batch: 10 signals x 2 samples
        live = await read_events(stream, 20, timeout_s=20)
        assert {e.event for e in live} == {"signals"}
        assert {e.data["device_id"] for e in live} <= set(fleet.devices)
        first, second = _messages(_scrape(port)), _messages(_scrape(port + 1))
        assert first > 0 and second > 0, f"one process got no work: {first}, {second}"
        assert first + second >= 2 * sent * 0.9  # each copy is acked by whoever received it
    finally:
        stream.close()
        publisher.disconnect()
        publisher.loop_stop()
        ack_client.disconnect()
        ack_client.loop_stop()
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        await pool.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
