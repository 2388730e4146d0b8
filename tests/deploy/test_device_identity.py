"""Per-device broker identity on a real mosquitto started by the test: the cloud enrolls
devices, writes mosquitto's password file and ACL from its registry, and mosquitto confines
each device to ``fl/v1/{its tenant}/{its id}/…``; a removed device is refused after the
reload (SIGHUP) the cloud sends itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from fleetlink.cloud import enrollment
from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.enrollment import EnrollRequest
from tests.auth_broker import INGEST_PASSWORD, auth_broker
from tests.deploy.test_broker_acl import Client
from tests.waiting import wait_until


@dataclass
class Deployment:
    port: int
    settings: CloudSettings
    devices: dict[str, tuple[str, str, str]]  # name -> (tenant, device id, password)
    log: Path


def _enroll_all(database_url: str, settings: CloudSettings) -> dict[str, tuple[str, str, str]]:
    async def run() -> dict[str, tuple[str, str, str]]:
        await migrate_url(database_url)
        conn = await asyncpg.connect(database_url)
        try:
            out = {}
            for name, tenant in (("a1", "acme"), ("a2", "acme"), ("b1", "globex")):
                await conn.execute(
                    "INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant
                )
                token = await enrollment.create_token(conn, tenant, "test", 1.0)
                answer = await enrollment.enroll(conn, settings, EnrollRequest(token=token.secret))
                out[name] = (tenant, answer.device_id, answer.mqtt_password)
            await enrollment.sync_broker(conn, settings)
            return out
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def deployment(database_url: str) -> Iterator[Deployment]:
    with auth_broker() as broker:
        settings = CloudSettings(
            mode="demo", database_url=database_url, mqtt_url=broker.service_url, **broker.files()
        )
        devices = _enroll_all(database_url, settings)
        yield Deployment(broker.port, settings, devices, broker.folder / "log")


def _client(d: Deployment, name: str) -> Client:
    _, device, password = d.devices[name]
    return Client(d.port, device, password)


def t(d: Deployment, name: str, kind: str, tenant: str | None = None) -> str:
    owner, device, _ = d.devices[name]
    return f"fl/v1/{tenant or owner}/{device}/{kind}"


def test_a_device_publishes_only_as_itself_in_its_own_tenant(deployment: Deployment) -> None:
    d = deployment
    ingest = Client(d.port, "ingest", INGEST_PASSWORD)
    a1 = _client(d, "a1")
    try:
        assert ingest.connected.is_set() and a1.connected.is_set()
        ingest.subscribe("fl/v1/+/+/telemetry", "fl/v1/+/+/status")
        a1.publish(t(d, "a1", "telemetry"))
        a1.publish(t(d, "a2", "telemetry"))  # as another device of its tenant
        a1.publish(t(d, "b1", "telemetry"))  # as another tenant's device
        a1.publish(t(d, "a1", "telemetry", tenant="globex"))  # its own id, another tenant
        a1.publish(t(d, "a1", "status"))
        wait_until(lambda: len(ingest.received) >= 2, 5)
        time.sleep(0.5)  # anything wrongly let through would have arrived by now
        assert sorted(ingest.received) == sorted([t(d, "a1", "telemetry"), t(d, "a1", "status")])
    finally:
        ingest.close()
        a1.close()


def test_a_device_reads_neither_another_devices_nor_another_tenants_topics(
    deployment: Deployment,
) -> None:
    d = deployment
    ingest = Client(d.port, "ingest", INGEST_PASSWORD)
    a1, a2 = _client(d, "a1"), _client(d, "a2")
    try:
        a1.subscribe(
            t(d, "a1", "cmd"),
            t(d, "a1", "ack"),
            t(d, "a2", "ack"),
            t(d, "b1", "cmd"),
            "fl/v1/globex/#",
            "fl/v1/#",
        )
        a2.subscribe(t(d, "a2", "ack"))
        for name, kind in (("a1", "ack"), ("a2", "ack"), ("b1", "cmd"), ("a1", "cmd")):
            ingest.publish(t(d, name, kind))
        a2.publish(t(d, "a2", "telemetry"))  # a2's uplink: readable by the ingest only
        wait_until(lambda: len(a1.received) >= 2 and a2.received, 5)
        time.sleep(0.5)
        # (overlapping filters deliver a1's own topics more than once)
        assert set(a1.received) == {t(d, "a1", "ack"), t(d, "a1", "cmd")}
        assert a2.received == [t(d, "a2", "ack")]
        # Devices write neither acks nor commands, not even their own.
        a1.publish(t(d, "a2", "ack"))
        a2.publish(t(d, "a2", "ack"))
        time.sleep(0.5)
        assert a2.received == [t(d, "a2", "ack")]
    finally:
        for client in (ingest, a1, a2):
            client.close()


def test_a_removed_device_is_refused_after_the_cloud_reloads_the_broker(
    deployment: Deployment,
) -> None:
    d = deployment
    tenant, device, password = d.devices["b1"]
    first = _client(d, "b1")
    assert first.connected.is_set()
    first.close()

    async def remove() -> None:
        conn = await asyncpg.connect(d.settings.database_dsn())
        try:
            async with conn.transaction():
                await enrollment.remove_device(conn, tenant, device)
            assert await enrollment.sync_broker(conn, d.settings)  # writes, then SIGHUP
        finally:
            await conn.close()

    asyncio.run(remove())
    refused: list[int | None] = []

    def refused_now() -> bool:
        client = Client(d.port, device, password)
        client.close()
        refused.append(client.refused_connect)
        return client.refused_connect is not None

    wait_until(refused_now, 5, "the removed device refused")
    still = _client(d, "a1")
    assert still.connected.is_set()  # the others keep their logins
    still.close()
