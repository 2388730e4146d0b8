"""Fixtures for the real services the tests run against.

PostgreSQL: the server at FLEETLINK_TEST_PG_ADMIN_URL (default: 127.0.0.1:5432 as
``postgres``, trust auth); every test session creates its own database and drops
it at the end. MQTT: mosquitto on 127.0.0.1:1883 where one listens, else a
throwaway ``mosquitto`` started on a free port for the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

# Two shared cores make timings noisy, so no per-example deadline; CI runs a fixed set of
# examples so that a red run is reproducible.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

PG_ADMIN_URL = os.environ.get(
    "FLEETLINK_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
    with scratch_database() as url:
        yield url


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """Create a fresh, empty database, yield its URL, and drop it afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"fleetlink_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def retained_topics(broker: Broker, pattern: str = "fl/v1/#", wait_s: float = 1.0) -> set[str]:
    """Return the topics under ``pattern`` that hold a retained message on ``broker``."""
    import paho.mqtt.client as mqtt

    found: set[str] = set()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"retained-{uuid.uuid4()}")
    client.on_message = lambda _c, _u, m: found.add(m.topic) if m.retain and m.payload else None
    client.connect(broker.host, broker.port)
    client.subscribe(pattern, qos=1)
    client.loop_start()
    time.sleep(wait_s)
    client.disconnect()
    client.loop_stop()
    return found


def clear_retained(broker: Broker, topics: set[str]) -> None:
    """Delete the retained messages on ``topics`` (an empty retained publish clears one)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"clear-{uuid.uuid4()}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    for name in topics:
        client.publish(name, b"", qos=1, retain=True).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[Broker]:
    """A running mosquitto: the machine's on 127.0.0.1:1883, else a throwaway one.

    On the machine's broker, the retained status messages this session's devices leave behind
    are cleared at the end, so runs do not pile them up.
    """
    if _port_open("127.0.0.1", 1883):
        broker = Broker("127.0.0.1", 1883)
        before = retained_topics(broker)
        yield broker
        clear_retained(broker, retained_topics(broker) - before)
        return
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.fail("mosquitto is not installed and none listens on 127.0.0.1:1883")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not _port_open("127.0.0.1", port):
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"throwaway mosquitto did not start on port {port}")
                time.sleep(0.05)
            yield Broker("127.0.0.1", port)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
