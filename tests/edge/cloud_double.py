"""A stand-in for the cloud on the MQTT side, used by the uplink and agent tests."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.shared.codec import decode, decode_raw, encode
from fleetlink.shared.messages import Ack, Status
from fleetlink.shared.topics import Kind, topic
from tests.waiting import eventually

TENANT = "acme"


class Cloud:
    """A stand-in for the cloud: records what the device publishes and sends acks."""

    def __init__(self, broker_url: str, device_id: str, auto_ack: bool = False) -> None:
        self.device_id = device_id
        self.auto_ack = auto_ack
        self.received: list[tuple[str, int]] = []
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[Status] = []
        self.lock = threading.Lock()
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-{device_id}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async(host, int(port))
        self.client.loop_start()

    async def wait_subscribed(self) -> None:
        """Return once the broker confirmed the subscriptions; raise AssertionError after 10 s."""
        await eventually(self.subscribed.is_set)

    def _on_subscribe(self, *_: object) -> None:
        self.subscribed.set()

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        kinds = (Kind.TELEMETRY, Kind.EVENTS, Kind.STATUS)
        client.subscribe([(topic(TENANT, self.device_id, kind), 1) for kind in kinds])

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        kind = message.topic.rsplit("/", 1)[1]
        if not message.payload:
            return  # an empty retained message deletes one (another test session cleaning up)
        with self.lock:
            if kind == Kind.STATUS:
                self.statuses.append(decode(bytes(message.payload), Status))
            else:
                body = decode_raw(bytes(message.payload))
                self.received.append((kind, int(body["seq"])))
                self.bodies.append(body)
        if self.auto_ack and kind != Kind.STATUS:
            self.ack([int(body["seq"])])

    def seqs(self) -> list[int]:
        with self.lock:
            return [seq for _, seq in self.received]

    def ack(self, seqs: list[int], device_id: str | None = None) -> None:
        ack = Ack(device_id=device_id or self.device_id, seqs=seqs)
        self.client.publish(topic(TENANT, self.device_id, Kind.ACK), encode(ack), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
