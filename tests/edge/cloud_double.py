"""A stand-in for the cloud on the MQTT side, used by the uplink and agent tests."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetlink.shared.codec import decode, decode_raw, encode
from fleetlink.shared.messages import Ack, Hello, Status
from fleetlink.shared.signing import payload_digest, sign
from fleetlink.shared.topics import Kind, topic
from tests.waiting import eventually

TENANT = "acme"


class Cloud:
    """A stand-in for the cloud: records what the device publishes and sends acks."""

    def __init__(
        self,
        broker_url: str,
        device_id: str,
        auto_ack: bool = False,
        key: bytes | None = None,
        high_water: int = 0,
    ) -> None:
        self.device_id = device_id
        self.auto_ack = auto_ack
        self.key = key
        self.high_water = high_water
        self.hellos: list[Hello] = []
        self.payloads: dict[int, bytes] = {}
        self.counter = 0
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
        kinds = (Kind.TELEMETRY, Kind.EVENTS, Kind.STATUS, Kind.HELLO)
        client.subscribe([(topic(TENANT, self.device_id, kind), 1) for kind in kinds])

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        kind = message.topic.rsplit("/", 1)[1]
        if not message.payload:
            return  # an empty retained message deletes one (another test session cleaning up)
        if kind == Kind.HELLO:
            hello = decode(bytes(message.payload), Hello)
            with self.lock:
                self.hellos.append(hello)
            self._send(
                Ack(
                    device_id=self.device_id, seqs=[], high_water=self.high_water, nonce=hello.nonce
                )
            )
            return
        with self.lock:
            if kind == Kind.STATUS:
                self.statuses.append(decode(bytes(message.payload), Status))
            else:
                body = decode_raw(bytes(message.payload))
                self.received.append((kind, int(body["seq"])))
                self.bodies.append(body)
                self.payloads[int(body["seq"])] = bytes(message.payload)
        if self.auto_ack and kind != Kind.STATUS:
            self.ack([int(body["seq"])])

    def seqs(self) -> list[int]:
        with self.lock:
            return [seq for _, seq in self.received]

    def ack(self, seqs: list[int], device_id: str | None = None) -> None:
        """Ack ``seqs``; with a key, signed and with the digest of what was received."""
        digests = []
        if self.key is not None:
            with self.lock:
                digests = [payload_digest(self.payloads[s]) for s in seqs]
        self._send(Ack(device_id=device_id or self.device_id, seqs=seqs, digests=digests))

    def _send(self, ack: Ack) -> None:
        with self.lock:
            self.counter += 1
            ack = ack.model_copy(update={"counter": self.counter})
        if self.key is not None:
            ack = sign(self.key, ack)
        self.client.publish(topic(TENANT, self.device_id, Kind.ACK), encode(ack), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
