"""The ingest speaks MQTT v5 with a shared subscription where the broker offers it, else 3.1.1."""

import asyncio
import socket
import threading

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from fleetlink.cloud.ingest.protocol import (
    BrokerAddress,
    IngestConfigError,
    broker_offers_mqtt5,
    parse_mqtt_url,
    plan_subscription,
)
from fleetlink.cloud.ingest.worker import IngestService
from fleetlink.cloud.settings import SharedSubscription
from fleetlink.shared.codec import decode
from fleetlink.shared.messages import Ack

from .conftest import Fleet, ingest_settings, mqtt_client
from .helpers import telemetry, telemetry_topic

ASYNC = pytest.mark.asyncio(loop_scope="session")
V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311


@pytest.mark.parametrize(
    ("setting", "offers_v5", "protocol", "first_filter"),
    [
        (SharedSubscription.AUTO, True, V5, "$share/ingest/fl/v1/+/+/telemetry"),
        (SharedSubscription.ON, True, V5, "$share/ingest/fl/v1/+/+/telemetry"),
        (SharedSubscription.OFF, True, V5, "fl/v1/+/+/telemetry"),
        (SharedSubscription.AUTO, False, V311, "fl/v1/+/+/telemetry"),
        (SharedSubscription.OFF, False, V311, "fl/v1/+/+/telemetry"),
    ],
)
def test_plan_follows_the_setting_and_what_the_broker_offers(
    setting, offers_v5, protocol, first_filter
):
    plan = plan_subscription(setting, offers_v5)
    assert plan.protocol is protocol
    assert plan.filters[0] == first_filter
    assert [f.rsplit("/", 1)[1] for f in plan.filters] == ["telemetry", "events", "status", "hello"]


def test_shared_subscription_group_is_configurable():
    plan = plan_subscription(SharedSubscription.AUTO, True, group="fleet-b")
    assert plan.filters[0] == "$share/fleet-b/fl/v1/+/+/telemetry"


def test_shared_subscription_demanded_of_a_3_1_1_broker_is_a_clear_error():
    with pytest.raises(IngestConfigError, match="does not speak MQTT v5"):
        plan_subscription(SharedSubscription.ON, broker_offers_v5=False)


def test_mqtt_url_parsing_keeps_credentials_out_of_repr():
    address = parse_mqtt_url("mqtt://ingest:s3cret@broker.example:1884")
    assert (address.host, address.port, address.username, address.password) == (
        "broker.example",
        1884,
        "ingest",
        "s3cret",
    )
    assert "s3cret" not in repr(address)
    with pytest.raises(IngestConfigError):
        parse_mqtt_url("http://broker")


@ASYNC
async def test_mosquitto_offers_mqtt5(mqtt_broker):
    address = BrokerAddress(mqtt_broker.host, mqtt_broker.port)
    assert await asyncio.to_thread(broker_offers_mqtt5, address)


@pytest.fixture
async def amqtt_broker():
    from amqtt.broker import Broker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    yield BrokerAddress("127.0.0.1", port)
    await broker.shutdown()


@ASYNC
async def test_on_a_3_1_1_only_broker_ingest_uses_3_1_1_and_a_plain_subscription(
    amqtt_broker, migrated_db, pool, fleet: Fleet
):
    assert not await asyncio.to_thread(broker_offers_mqtt5, amqtt_broker, 3)
    url = f"mqtt://{amqtt_broker.host}:{amqtt_broker.port}"
    service = IngestService(ingest_settings(migrated_db, url), pool)
    await service.start()
    try:
        assert service.plan is not None
        assert service.plan.protocol is V311 and not service.plan.shared
        acked = threading.Event()
        client = await asyncio.to_thread(mqtt_client, amqtt_broker, V311)
        client.on_message = lambda c, u, m: decode(m.payload, Ack).seqs == [1] and acked.set()
        client.subscribe(f"fl/v1/{fleet.tenant}/+/ack", qos=1)
        await asyncio.sleep(0.2)
        device = fleet.devices[0]
        client.publish(telemetry_topic(fleet.tenant, device), telemetry(device, 1), qos=1)
        assert await asyncio.to_thread(acked.wait, 10)
        assert await pool.fetchval("SELECT count(*) FROM samples WHERE device_id = $1", device) == 5
        await asyncio.to_thread(client.disconnect)
        client.loop_stop()
    finally:
        await service.stop()
