"""No forged message makes a device drop data: signed acks with digests, the cloud's "hello"
answer, and spoofed batches under a device's pending seqs (issue 16, probes 4 and 5)."""

import asyncio
import contextlib
from pathlib import Path

import pytest

from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.registry import issue_device_key
from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Ack, Series, TelemetryBatch
from fleetlink.shared.signing import verify
from fleetlink.shared.topics import Kind, topic
from tests.waiting import eventually

from .conftest import AckListener, Fleet, ingest_settings
from .helpers import SPEED, now_ms, telemetry, telemetry_topic

pytestmark = pytest.mark.asyncio(loop_scope="session")


def marked_batch(device: str, value: float):  # type: ignore[no-untyped-def]
    def build(seq: int) -> bytes:
        series = [Series(signal_id=SPEED, offsets_ms=[0], values=[value])]
        return encode(
            TelemetryBatch(device_id=device, seq=seq, base_time_ms=now_ms() - 5000, series=series)
        )

    return build


async def test_spoofed_batches_and_forged_acks_cost_the_device_nothing(
    pool,
    migrated_db,
    mqtt_broker,
    fleet: Fleet,
    publisher,
    ack_listener: AckListener,
    tmp_path: Path,
):
    device = fleet.devices[0]
    key = await issue_device_key(pool, device)
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    # While the device is offline, someone publishes batches under its next seqs 1..3.
    for seq in (1, 2, 3):
        publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, seq), qos=1)
    await ack_listener.wait_for(lambda: sorted(ack_listener.seqs(device)) == [1, 2, 3])
    assert all(verify(key, a) for a in ack_listener.acks)

    outbox = Outbox(tmp_path / "outbox.db")
    for n in range(5):
        outbox.add("telemetry", marked_batch(device, 1000.0 + n))
    uplink = Uplink(
        DeviceSection(id=device, tenant=fleet.tenant, key=key.hex()),
        MqttSection(url=mqtt_broker.url),
        outbox,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        # A forged ack for every pending seq arrives as the device connects.
        await eventually(lambda: uplink.ready)
        forged = Ack(device_id=device, seqs=list(range(1, 20)), high_water=2**50)
        publisher.publish(topic(fleet.tenant, device, Kind.ACK), encode(forged), qos=1)
        await eventually(lambda: len(outbox) == 0, 15, "the device's batches acked")
        assert uplink.counters["acks_rejected"] >= 1
        assert uplink.high_water_adopted == 3
        values = await pool.fetch(
            "SELECT value FROM samples WHERE device_id = $1 AND value >= 1000 ORDER BY value",
            device,
        )
        assert [r["value"] for r in values] == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
        assert outbox.next_seq < 100  # the forged high-water mark was not taken
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        outbox.close()
        await service.stop()


async def test_the_cloud_answers_hello_with_a_signed_mark_only_to_the_device(
    pool, migrated_db, mqtt_broker, fleet: Fleet, publisher, ack_listener: AckListener
):
    from fleetlink.shared.messages import Hello

    device = fleet.devices[0]
    key = await issue_device_key(pool, device)
    service = IngestService(ingest_settings(migrated_db, mqtt_broker.url), pool)
    await service.start()
    try:
        publisher.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 7), qos=1)
        await ack_listener.wait_for(lambda: ack_listener.seqs(device) == [7])
        hello = Hello(device_id=device, nonce="ab" * 16, next_seq=1)
        publisher.publish(topic(fleet.tenant, device, Kind.HELLO), encode(hello), qos=1)
        await ack_listener.wait_for(lambda: any(a.nonce == "ab" * 16 for a in ack_listener.acks))
        answer = next(a for a in ack_listener.acks if a.nonce == "ab" * 16)
        assert answer.high_water == 7 and answer.seqs == [] and verify(key, answer)
        counters = [a.counter for a in ack_listener.acks]
        assert counters == sorted(set(counters))  # every message to the device is distinct
    finally:
        with contextlib.suppress(Exception):
            await service.stop()
