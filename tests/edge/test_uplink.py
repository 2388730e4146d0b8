"""The MQTT uplink against a real mosquitto, with the test playing the cloud."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Event, EventBatch, Series, TelemetryBatch
from fleetlink.shared.topics import Kind, topic
from tests.conftest import Broker, _port_open, free_port
from tests.edge.cloud_double import TENANT, Cloud
from tests.waiting import eventually


def telemetry(device_id: str) -> Callable[[int], bytes]:
    def build(seq: int) -> bytes:
        series = [Series(signal_id=12, offsets_ms=[0, 100], values=[800.0, 810.0])]
        return encode(
            TelemetryBatch(
                device_id=device_id, seq=seq, base_time_ms=1_700_000_000_000, series=series
            )
        )

    return build


def events(device_id: str) -> Callable[[int], bytes]:
    def build(seq: int) -> bytes:
        event = Event(id=uuid.uuid4(), time_ms=1_700_000_000_000, type="trip_start")
        return encode(EventBatch(device_id=device_id, seq=seq, events=[event]))

    return build


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def device_id() -> str:
    return f"dev-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def make_uplink(url: str, device_id: str, outbox: Outbox, **mqtt: object) -> Uplink:
    settings = MqttSection.model_validate({"url": url, **mqtt})
    return Uplink(
        DeviceSection(id=device_id, tenant=TENANT), settings, outbox, connack_timeout_s=1.0
    )


async def test_events_go_first_and_batches_are_deleted_only_when_acked(
    mqtt_broker: Broker, device_id: str, outbox: Outbox
) -> None:
    outbox.add("telemetry", telemetry(device_id))
    outbox.add("telemetry", telemetry(device_id))
    outbox.add("events", events(device_id))
    cloud = Cloud(mqtt_broker.url, device_id)
    await cloud.wait_subscribed()
    uplink = make_uplink(mqtt_broker.url, device_id, outbox)
    try:
        async with running(uplink):
            await eventually(lambda: len(cloud.seqs()) >= 3)
            assert cloud.received[0] == ("events", 3)
            assert sorted(cloud.seqs()) == [1, 2, 3]
            await asyncio.sleep(0.3)
            assert [b.seq for b in outbox.pending()] == [3, 1, 2]
            cloud.ack([1, 3])
            await eventually(lambda: len(outbox) == 1)
            assert [b.seq for b in outbox.pending()] == [2]
            seq = outbox.add("telemetry", telemetry(device_id))
            uplink.wake()
            await eventually(lambda: seq in cloud.seqs())
            cloud.ack([2, seq])
            await eventually(lambda: len(outbox) == 0)
            assert uplink.counters["acked"] == 4
    finally:
        cloud.close()


async def test_retained_status_is_online_while_running_and_offline_after(
    mqtt_broker: Broker, device_id: str, outbox: Outbox
) -> None:
    cloud = Cloud(mqtt_broker.url, device_id)
    await cloud.wait_subscribed()
    try:
        async with running(make_uplink(mqtt_broker.url, device_id, outbox)):
            await eventually(lambda: any(s.online for s in cloud.statuses))
        await eventually(lambda: bool(cloud.statuses) and not cloud.statuses[-1].online)
    finally:
        cloud.close()
    late = Cloud(mqtt_broker.url, device_id)
    await late.wait_subscribed()
    try:
        await eventually(lambda: bool(late.statuses))
        assert late.statuses[-1].online is False and late.statuses[-1].device_id == device_id
        assert {s.agent_version for s in cloud.statuses} == {version("fleetlink")}
    finally:
        late.close()


async def test_unacked_batch_is_republished_after_the_ack_timeout(
    mqtt_broker: Broker, device_id: str, outbox: Outbox
) -> None:
    outbox.add("telemetry", telemetry(device_id))
    cloud = Cloud(mqtt_broker.url, device_id)
    await cloud.wait_subscribed()
    uplink = make_uplink(mqtt_broker.url, device_id, outbox, ack_timeout_s=0.5)
    try:
        async with running(uplink):
            await eventually(lambda: cloud.seqs().count(1) >= 2)
            assert uplink.counters["republished"] >= 1
            cloud.ack([1])
            await eventually(lambda: len(outbox) == 0)
            count = len(cloud.seqs())
            await asyncio.sleep(1.0)
            assert len(cloud.seqs()) == count
    finally:
        cloud.close()


async def test_inflight_window_bounds_unacked_publishes(
    mqtt_broker: Broker, device_id: str, outbox: Outbox
) -> None:
    for _ in range(10):
        outbox.add("telemetry", telemetry(device_id))
    cloud = Cloud(mqtt_broker.url, device_id)
    await cloud.wait_subscribed()
    uplink = make_uplink(mqtt_broker.url, device_id, outbox, max_inflight=4)
    try:
        async with running(uplink):
            await eventually(lambda: len(cloud.seqs()) >= 4)
            await asyncio.sleep(0.5)
            assert sorted(cloud.seqs()) == [1, 2, 3, 4]
            cloud.ack([1, 2])
            await eventually(lambda: len(cloud.seqs()) >= 6)
            await asyncio.sleep(0.3)
            assert sorted(cloud.seqs()) == [1, 2, 3, 4, 5, 6]
    finally:
        cloud.close()


async def test_acks_that_are_malformed_or_for_another_device_change_nothing(
    mqtt_broker: Broker, device_id: str, outbox: Outbox
) -> None:
    outbox.add("telemetry", telemetry(device_id))
    cloud = Cloud(mqtt_broker.url, device_id)
    await cloud.wait_subscribed()
    uplink = make_uplink(mqtt_broker.url, device_id, outbox)
    try:
        async with running(uplink):
            await eventually(lambda: 1 in cloud.seqs())
            ack_topic = topic(TENANT, device_id, Kind.ACK)
            cloud.client.publish(ack_topic, b"\x01\x00garbage", qos=1)
            cloud.ack([1], device_id="someone-else")
            await eventually(lambda: uplink.counters["acks_rejected"] >= 2)
            assert [b.seq for b in outbox.pending()] == [1]
    finally:
        cloud.close()


class ThrowawayBroker:
    """A mosquitto of our own on a fixed port, so the test can stop and restart it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.conf = Path(self.dir.name) / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        await eventually(lambda: _port_open("127.0.0.1", self.port), 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


async def test_broker_outage_loses_nothing_and_unacked_batches_are_redelivered(
    device_id: str, outbox: Outbox
) -> None:
    broker = ThrowawayBroker()
    await broker.start()
    cloud = Cloud(broker.url, device_id)
    await cloud.wait_subscribed()
    # The cloud double may resubscribe after the device has republished; the timeout covers it.
    uplink = make_uplink(broker.url, device_id, outbox, ack_timeout_s=2)
    try:
        async with running(uplink):
            outbox.add("telemetry", telemetry(device_id))
            outbox.add("telemetry", telemetry(device_id))
            uplink.wake()
            await eventually(lambda: sorted(cloud.seqs()) == [1, 2])
            broker.stop()
            await eventually(lambda: not uplink.ready)
            for _ in range(3):
                outbox.add("telemetry", telemetry(device_id))
            outbox.add("events", events(device_id))
            uplink.wake()
            await asyncio.sleep(1.5)
            await broker.start()
            await eventually(lambda: set(cloud.seqs()) >= {1, 2, 3, 4, 5, 6}, 20)
            assert cloud.seqs().count(1) >= 2
            assert uplink.counters["connects"] >= 2
            assert len(outbox) == 6
            cloud.ack([1, 2, 3, 4, 5, 6])
            await eventually(lambda: len(outbox) == 0)
    finally:
        cloud.close()
        broker.stop()


@pytest.mark.parametrize("protocol", ["auto", "3.1.1"])
async def test_broker_that_speaks_only_mqtt_311_gets_a_fallback_or_pinned_connection(
    device_id: str, outbox: Outbox, protocol: str
) -> None:
    amqtt_broker = pytest.importorskip("amqtt.broker", reason="amqtt is not installed")
    port = free_port()
    broker = amqtt_broker.Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
    )
    await broker.start()
    url = f"mqtt://127.0.0.1:{port}"
    outbox.add("telemetry", telemetry(device_id))
    cloud = Cloud(url, device_id, auto_ack=True)
    await cloud.wait_subscribed()
    uplink = make_uplink(url, device_id, outbox, protocol=protocol)
    try:
        async with running(uplink):
            await eventually(lambda: len(outbox) == 0, 15 if protocol == "auto" else 3)
            assert uplink.protocol == MQTTProtocolVersion.MQTTv311
    finally:
        cloud.close()
        await broker.shutdown()
