"""Fixtures for the cloud tests: a migrated database, a pool, a tenant, an ack listener."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleetlink.cloud.auth.accounts import add_user
from fleetlink.cloud.auth.api_tokens import create_token
from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.registry import assign_device, create_device, create_tenant, create_vehicle
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.codec import decode
from fleetlink.shared.messages import Ack


@pytest.fixture(scope="session")
def migrated_db(database_url: str) -> str:
    """The session database with every migration applied."""
    asyncio.run(migrate_url(database_url))
    return database_url


@pytest.fixture
async def pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(migrated_db, min_size=1, max_size=6)
    yield pool
    await pool.close()


@dataclass
class Fleet:
    """A fresh tenant with devices, each assigned to its own vehicle."""

    tenant: str
    devices: list[str]
    vehicles: dict[str, uuid.UUID]


async def make_fleet(pool: asyncpg.Pool, devices: int = 1) -> Fleet:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await create_tenant(pool, tenant)
    fleet = Fleet(tenant, [], {})
    async with pool.acquire() as conn:
        for n in range(devices):
            device = f"{tenant}-dev{n}"
            await create_device(conn, tenant, device)
            vehicle = await create_vehicle(conn, tenant, f"truck {n}")
            await assign_device(conn, device, vehicle, datetime.now(UTC) - timedelta(days=1))
            fleet.devices.append(device)
            fleet.vehicles[device] = vehicle
    return fleet


async def member_token(
    db: asyncpg.Pool | asyncpg.Connection,
    tenant: str,
    role: str = "admin",
    scopes: tuple[str, ...] = ("read", "write"),
) -> str:
    """Make a new member of ``tenant`` with ``role`` and return an API token of theirs."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@{tenant}.example"
    async with contextlib.AsyncExitStack() as stack:
        conn = (
            db
            if isinstance(db, asyncpg.Connection)
            else await stack.enter_async_context(db.acquire())
        )
        user_id = await add_user(conn, tenant, email, role)
        _, token = await create_token(conn, tenant, user_id, scopes=scopes)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def fleet(pool: asyncpg.Pool) -> Fleet:
    return await make_fleet(pool)


# Our own group, so no other ingest on the shared broker takes a share of the tests' messages.
SHARE_GROUP = f"test-{uuid.uuid4().hex[:10]}"


def ingest_settings(database_url: str, broker_url: str, **overrides: object) -> CloudSettings:
    values: dict[str, object] = {
        "mode": "demo",
        "database_url": database_url,
        "mqtt_url": broker_url,
        "mqtt_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}",
        "mqtt_session_expiry_s": 0,
        "mqtt_share_group": SHARE_GROUP,
        "ingest_max_wait_ms": 20,
    }
    values.update(overrides)
    return CloudSettings(**values)  # type: ignore[arg-type]


@dataclass
class AckListener:
    """Collects the Acks the cloud publishes for one tenant."""

    acks: list[Ack] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seqs(self, device: str) -> list[int]:
        with self.lock:
            return [s for a in self.acks if a.device_id == device for s in a.seqs]

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout_s} s: {self.acks}")
            await asyncio.sleep(0.02)


def mqtt_client(broker, protocol=MQTTProtocolVersion.MQTTv5) -> mqtt.Client:  # type: ignore[no-untyped-def]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:10]}", protocol=protocol
    )
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


@pytest.fixture
def publisher(mqtt_broker) -> Iterator[mqtt.Client]:  # type: ignore[no-untyped-def]
    client = mqtt_client(mqtt_broker)
    yield client
    client.disconnect()
    client.loop_stop()


def listen_for_acks(broker, tenant: str) -> tuple[AckListener, mqtt.Client]:  # type: ignore[no-untyped-def]
    """Return a listener collecting every Ack published to ``tenant``'s devices, and its
    client (disconnect it when done)."""
    listener = AckListener()
    subscribed = threading.Event()

    def on_message(client, userdata, message):  # type: ignore[no-untyped-def]
        with listener.lock:
            listener.acks.append(decode(message.payload, Ack))

    client = mqtt_client(broker)
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.subscribe(f"fl/v1/{tenant}/+/ack", qos=1)
    assert subscribed.wait(5)
    return listener, client


@pytest.fixture
def ack_listener(mqtt_broker, fleet: Fleet) -> Iterator[AckListener]:  # type: ignore[no-untyped-def]
    listener, client = listen_for_acks(mqtt_broker, fleet.tenant)
    yield listener
    client.disconnect()
    client.loop_stop()
