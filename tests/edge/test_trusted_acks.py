"""The agent acts only on acks it can verify, deletes only the batch the cloud holds, and
publishes nothing from a new outbox before the cloud's mark is known (issue 16, probe 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from paho.mqtt.enums import MQTTProtocolVersion

from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.uplink import Uplink
from fleetlink.shared.codec import encode
from fleetlink.shared.messages import Ack
from fleetlink.shared.signing import new_key, payload_digest, sign
from fleetlink.shared.topics import Kind, topic
from tests.conftest import Broker
from tests.edge.cloud_double import TENANT, Cloud
from tests.edge.test_uplink import running, telemetry
from tests.waiting import eventually


def keyed_uplink(broker: Broker, device_id: str, outbox: Outbox, key: bytes) -> Uplink:
    return Uplink(
        DeviceSection(id=device_id, tenant=TENANT, key=key.hex()),
        MqttSection(url=broker.url, ack_timeout_s=1.0),
        outbox,
        connack_timeout_s=1.0,
    )


async def test_acks_that_do_not_verify_are_ignored(mqtt_broker: Broker, tmp_path: Path) -> None:
    device_id = "dev-trust-1"
    key = new_key()
    cloud = Cloud(mqtt_broker.url, device_id, key=key)
    await cloud.wait_subscribed()
    with Outbox(tmp_path / "o.db") as outbox:
        for _ in range(3):
            outbox.add("telemetry", telemetry(device_id))
        uplink = keyed_uplink(mqtt_broker, device_id, outbox, key)
        try:
            async with running(uplink):
                await eventually(lambda: sorted(set(cloud.seqs())) == [1, 2, 3])
                ack_topic = topic(TENANT, device_id, Kind.ACK)
                digests = [payload_digest(cloud.payloads[s]) for s in (1, 2, 3)]
                unsigned = Ack(device_id=device_id, seqs=[1, 2, 3], digests=digests)
                other_key = sign(new_key(), unsigned)
                no_digests = sign(key, Ack(device_id=device_id, seqs=[1, 2, 3]))
                for forged in (unsigned, other_key, no_digests):
                    cloud.client.publish(ack_topic, encode(forged), qos=1)
                await eventually(lambda: uplink.counters["acks_rejected"] == 3)
                assert len(outbox) == 3
                cloud.ack([1, 2])  # signed, with the digests of what it received
                await eventually(lambda: [b.seq for b in outbox.pending()] == [3])
        finally:
            cloud.close()


async def test_an_ack_for_other_bytes_under_a_seq_renumbers_the_batch_and_sends_it_again(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    device_id = "dev-trust-2"
    key = new_key()
    cloud = Cloud(mqtt_broker.url, device_id, key=key)
    await cloud.wait_subscribed()
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.add("telemetry", telemetry(device_id))
        uplink = keyed_uplink(mqtt_broker, device_id, outbox, key)
        try:
            async with running(uplink):
                await eventually(lambda: 1 in cloud.seqs())
                # The cloud stored someone else's batch under seq 1 and acks that.
                spoofed = sign(
                    key, Ack(device_id=device_id, seqs=[1], digests=["00" * 8], counter=99)
                )
                cloud.client.publish(topic(TENANT, device_id, Kind.ACK), encode(spoofed), qos=1)
                await eventually(lambda: [b.seq for b in outbox.pending()] == [2])
                await eventually(lambda: 2 in cloud.seqs())
                assert uplink.counters["seq_collisions"] == 1
                cloud.ack([2])
                await eventually(lambda: len(outbox) == 0)
        finally:
            cloud.close()


async def test_a_new_outbox_publishes_only_after_the_clouds_mark_and_above_it(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    device_id = "dev-trust-3"
    key = new_key()
    cloud = Cloud(mqtt_broker.url, device_id, key=key, high_water=500)
    await cloud.wait_subscribed()
    (tmp_path / "o.db").write_bytes(b"")  # a wiped outbox
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.add("telemetry", telemetry(device_id))
        outbox.add("telemetry", telemetry(device_id))
        uplink = keyed_uplink(mqtt_broker, device_id, outbox, key)
        try:
            async with running(uplink):
                await eventually(lambda: len(cloud.seqs()) >= 2)
                await asyncio.sleep(0.3)
                assert sorted(set(cloud.seqs())) == [501, 502]
                assert cloud.hellos and outbox.confirmed
        finally:
            cloud.close()


def test_with_mqtt_5_the_session_and_each_message_carry_their_expiry(tmp_path: Path) -> None:
    """The broker keeps the device's session (its ack subscription and queued acks) across a
    lost link, and drops a batch nobody took within a day (the outbox still holds it)."""
    with Outbox(tmp_path / "o.db") as outbox:
        settings = MqttSection(protocol="5", session_expiry_s=3600, message_expiry_s=600)
        uplink = Uplink(DeviceSection(id="dev-expiry", tenant=TENANT), settings, outbox)
        connect = uplink._connect_properties()
        publish = uplink._publish_properties()
        assert connect is not None and connect.SessionExpiryInterval == 3600
        assert publish is not None and publish.MessageExpiryInterval == 600
        uplink.protocol = MQTTProtocolVersion.MQTTv311
        assert uplink._connect_properties() is None and uplink._publish_properties() is None
