"""The paho-mqtt side of a worker: its own thread, handing classified messages to asyncio.

Messages are acked manually, only after the writer committed them. A semaphore bounds how
many are in flight between the MQTT thread and the writer: when it is exhausted the MQTT
thread waits, so the broker stops sending instead of the process growing without limit.

Decoded messages cross to the event loop through a list the writer takes from (``take``):
the MQTT thread never wakes the loop (a ``call_soon_threadsafe`` per message was the
largest single cost in the profile: a pipe write per message, contending for the GIL).
The in-flight window (what the broker may send before we ack) is reported at
connect: our receive maximum, what the broker states, and the peak we actually held.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetlink.cloud.ingest.inbound import DeadLetter, Delivery, Inbound, IngestRules, classify
from fleetlink.cloud.ingest.protocol import BrokerAddress, SubscriptionPlan
from fleetlink.shared.backoff import Backoff

log = logging.getLogger(__name__)

_RECEIVE_MAXIMUM = 65535
# A broker window below this caps a worker's rate at window / commit time (docs/observability.md).
_SMALL_WINDOW = 100


@dataclass(frozen=True, slots=True)
class FlowWindow:
    """The in-flight settings of one connection, as asked and as the broker answered.

    ``receive_maximum``: unacked deliveries we allow the broker (MQTT v5 CONNECT; None on
    3.1.1, where only the broker's own per-client limit applies, e.g. mosquitto's
    ``max_inflight_messages``, default 20). ``broker_receive_maximum``: what the broker's
    CONNACK allows our own publishes (the acks to devices), None when it states no limit.
    ``publish_inflight``: paho's limit on our unacked publishes. ``capacity``: deliveries held
    between the MQTT thread and the writer before the MQTT thread waits.
    """

    receive_maximum: int | None
    broker_receive_maximum: int | None
    publish_inflight: int
    capacity: int

    def describe(self) -> str:
        asked = "none (MQTT 3.1.1)" if self.receive_maximum is None else self.receive_maximum
        stated = self.broker_receive_maximum or "no limit stated"
        return (
            f"receive maximum asked {asked}; broker accepts {stated} unacked publishes from "
            f"us; ack publish window {self.publish_inflight}; {self.capacity} held before "
            "the MQTT thread waits (the broker's per-client delivery limit, e.g. mosquitto "
            "max_inflight_messages, also caps deliveries: docs/observability.md)"
        )


class MqttSource:
    """One MQTT connection that subscribes per ``plan``; ``take`` returns what it received.

    Call ``start`` from the event loop, ``release`` once per item taken and handled, and
    ``stop`` to disconnect.
    """

    def __init__(
        self,
        address: BrokerAddress,
        plan: SubscriptionPlan,
        client_id: str,
        capacity: int,
        session_expiry_s: int = 0,
        rules: IngestRules | None = None,
        reconnect_s: tuple[int, int] = (1, 4),
        receive_maximum: int = _RECEIVE_MAXIMUM,
        publish_inflight: int = 1000,
    ) -> None:
        self.address = address
        self.plan = plan
        self.client_id = client_id
        self._slots = threading.BoundedSemaphore(capacity)
        self._capacity = capacity
        self._receive_maximum = receive_maximum
        self._publish_inflight = publish_inflight
        # Classified messages waiting for the writer, which polls them with ``take``.
        self._pending: list[Inbound] = []
        self._pending_lock = threading.Lock()
        self._held = 0  # deliveries taken and not yet released
        self._held_lock = threading.Lock()
        self.peak_held = 0
        self.window: FlowWindow | None = None
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._session_expiry_s = session_expiry_s
        self._rules = rules or IngestRules()
        self._loop: asyncio.AbstractEventLoop | None = None
        persistent = session_expiry_s > 0
        v5 = plan.protocol is MQTTProtocolVersion.MQTTv5
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else not persistent,
            protocol=plan.protocol,
            manual_ack=True,
        )
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        if address.tls:
            self._client.tls_set()
        # Acks to devices are QoS 1 publishes: paho's default window of 20 would make every
        # chunk wait on round trips; nothing is queued beyond it that would not be sent anyway.
        self._client.max_inflight_messages_set(publish_inflight)
        self._client.max_queued_messages_set(0)
        self._backoff = Backoff(reconnect_s[0], max(reconnect_s))
        self._jitter_next_reconnect()
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = lambda *_: self._jitter_next_reconnect()
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def _jitter_next_reconnect(self) -> None:
        """One jittered, exponentially growing delay before paho's next attempt (D35)."""
        delay = self._backoff.next()
        self._client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]  # floats work

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself after a loss."""
        self._loop = asyncio.get_running_loop()
        if self.plan.protocol is MQTTProtocolVersion.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = self._receive_maximum
            if self._session_expiry_s:
                props.SessionExpiryInterval = self._session_expiry_s
            self._client.connect_async(
                self.address.host,
                self.address.port,
                keepalive=30,
                clean_start=self._session_expiry_s == 0,
                properties=props,
            )
        else:
            self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()

    async def wait_connected(self, timeout_s: float) -> bool:
        """Return True once subscribed, False if ``timeout_s`` passed first."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._connected.is_set():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def stop(self) -> None:
        """Disconnect and join the MQTT thread; unacked messages stay with the broker."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def release(self, count: int = 1) -> None:
        with self._held_lock:
            self._held -= count
        if count:
            self._slots.release(count)

    @property
    def held(self) -> int:
        """Deliveries received and not yet released (committed and acked, or dropped)."""
        return self._held

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one delivery to the broker (call only after its data is committed)."""
        self._client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self._client.publish(topic, payload, qos=qos)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning(
                "MQTT connect refused by %s:%s: %s",
                self.address.host,
                self.address.port,
                reason_code,
            )
            return
        self._backoff.reset()
        self._jitter_next_reconnect()
        v5 = self.plan.protocol is MQTTProtocolVersion.MQTTv5
        stated = getattr(properties, "ReceiveMaximum", None) if v5 else None
        self.window = FlowWindow(
            self._receive_maximum if v5 else None,
            stated,
            self._publish_inflight,
            self._capacity,
        )
        client.subscribe([(f, 1) for f in self.plan.filters])
        log.info(
            "ingest %s connected to %s:%s (%s), subscribed to %s",
            self.client_id,
            self.address.host,
            self.address.port,
            "MQTT v5" if self.plan.protocol is MQTTProtocolVersion.MQTTv5 else "MQTT 3.1.1",
            ", ".join(self.plan.filters),
        )
        log.info("ingest %s in-flight window: %s", self.client_id, self.window.describe())
        if stated is not None and stated < _SMALL_WINDOW:
            log.warning(
                "the broker allows only %d unacked messages per client (mosquitto: "
                "max_inflight_messages); acking after commit, one worker then does at most "
                "%d messages per commit time: raise it (docs/observability.md)",
                stated,
                stated,
            )
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._jitter_next_reconnect()
        if self._connected.is_set() and not self._stopping.is_set():
            log.warning("ingest %s lost the broker: %s", self.client_id, reason_code)
        self._connected.clear()

    def _publisher(self, message: mqtt.MQTTMessage) -> str | None:
        name = self._rules.publisher_property
        props = getattr(message, "properties", None)
        if not name or props is None:
            return None
        stated = [v for k, v in getattr(props, "UserProperty", []) if k == name]
        # A client can add the property itself; only the last one (the broker's) counts.
        return stated[-1] if stated else None

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage):
        while not self._slots.acquire(timeout=0.5):
            if self._stopping.is_set():
                return
        try:
            topic_name = message.topic
        except UnicodeDecodeError:  # paho decodes the topic lazily; junk is not UTF-8
            topic_name = message._topic.decode("utf-8", "replace")
        delivery = Delivery(
            topic_name,
            bytes(message.payload),
            message.mid,
            message.qos,
            datetime.now(UTC),
            self._publisher(message),
        )
        item: Inbound = classify(delivery, rules=self._rules)
        if delivery.topic.startswith("$"):  # a retained $SYS or stray topic; never ours
            item = DeadLetter(delivery, "not a Fleetlink topic")
        with self._held_lock:
            self._held += 1
            self.peak_held = max(self.peak_held, self._held)
        with self._pending_lock:
            self._pending.append(item)

    def take(self, limit: int) -> list[Inbound]:
        """Return up to ``limit`` classified messages, oldest first, removing them."""
        with self._pending_lock:
            items = self._pending[:limit]
            del self._pending[:limit]
        return items

    @property
    def waiting(self) -> int:
        """Messages classified and not yet taken by the writer."""
        return len(self._pending)
