"""After a broker outage both sides are back within 5 s of the broker's return by default
(issue 16, probe 9): paho's reconnect backoff is configurable and capped at 4 s."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from fleetlink.cloud.db.migrate import migrate_url
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.settings import CloudSettings
from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.uplink import Uplink
from tests.conftest import _port_open, free_port
from tests.waiting import eventually, wait_until


class Mosquitto:
    """A mosquitto this test owns, stopped and started again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        wait_until(lambda: _port_open("127.0.0.1", self.port), 10, "mosquitto listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp))
        mosquitto.start()
        try:
            yield mosquitto
        finally:
            mosquitto.stop()


async def test_cloud_and_agent_reconnect_within_five_seconds_of_the_brokers_return(
    broker: Mosquitto, database_url: str, tmp_path: Path
) -> None:
    await migrate_url(database_url)
    url = f"mqtt://127.0.0.1:{broker.port}"
    settings = CloudSettings(
        mode="demo", database_url=database_url, mqtt_url=url, shared_subscription="off"
    )
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    ingest = IngestService(settings, pool)
    await ingest.start()
    outbox = Outbox(tmp_path / "o.db")
    uplink = Uplink(DeviceSection(id="d-rc", tenant="rc"), MqttSection(url=url), outbox)
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        await eventually(lambda: uplink.ready and ingest.connected)
        broker.stop()
        await eventually(lambda: not uplink.ready and not ingest.connected)
        await asyncio.sleep(10)  # long enough for both backoffs to reach their cap
        broker.start()
        back = time.monotonic()
        await eventually(lambda: uplink.ready and ingest.connected, timeout_s=15)
        assert time.monotonic() - back < 5.5
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        outbox.close()
        await ingest.stop()
        await pool.close()
