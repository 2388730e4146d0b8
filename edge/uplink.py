"""The MQTT uplink: publishes outbox batches at QoS 1 and deletes them only when acked.

paho-mqtt runs its network loop in its own thread (with its own reconnect backoff); its
callbacks only hand events to the asyncio loop, where the in-flight window, redelivery and
outbox calls live. Every reconnect republishes everything still in the outbox, so a broker
that is down for any length of time loses nothing within the outbox cap.

What the uplink trusts (docs/security.md): with a device key configured, only acks whose
HMAC verifies; a batch is deleted only if the ack's digest for its seq is the digest of this
very batch (otherwise the cloud holds other bytes under that seq, and the batch is renumbered
and sent again). Before the first publish from a new outbox, and on every connect, it sends a
"hello" and adopts the high-water mark of the signed answer that echoes its nonce.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetlink.edge.config import DeviceSection, MqttSection
from fleetlink.edge.fences import FenceStore
from fleetlink.edge.outbox import Outbox, StoredBatch
from fleetlink.edge.sources.base import AdapterState
from fleetlink.shared.backoff import Backoff
from fleetlink.shared.codec import CodecError, decode, encode
from fleetlink.shared.messages import (
    MAX_SEQ,
    Ack,
    CanStatus,
    EventBatch,
    GeofenceSet,
    Hello,
    ObdbStatus,
    Status,
    TelemetryBatch,
    VehicleReport,
)
from fleetlink.shared.signing import verify
from fleetlink.shared.topics import Kind, topic
from fleetlink.shared.version import VERSION

log = logging.getLogger(__name__)

_UNSUPPORTED_PROTOCOL = 132
_CLOSED_BEFORE_CONNACK_LIMIT = 2
_TICK_S = 0.2
_HELLO_RETRY_S = 5.0


def with_seq(kind: str, payload: bytes, seq: int) -> bytes:
    """Return a stored batch re-encoded under a new seq (raises CodecError if it does not
    decode, which cannot happen for what this agent stored)."""
    model = EventBatch if kind == "events" else TelemetryBatch
    return encode(decode(payload, model).model_copy(update={"seq": seq}))


def _worth_logging(count: int) -> bool:
    """Return True for the 1st, 10th, 100th… occurrence: repeated refusals cost few lines."""
    return count > 0 and 10 ** (len(str(count)) - 1) == count


def _now_ms() -> int:
    return int(time.time() * 1000)


class Uplink:
    """Publishes the outbox to the broker and applies the cloud's acks to it.

    ``counters`` holds ``published``, ``republished``, ``acked``, ``acks_rejected`` and
    ``connects``. ``protocol`` is the MQTT version in use. With ``mqtt.protocol = "auto"`` it is
    5 until a broker refuses it or leaves an MQTT 5 CONNECT unanswered for
    ``connack_timeout_s``, then 3.1.1; "5" and "3.1.1" pin it.
    """

    def __init__(
        self,
        device: DeviceSection,
        settings: MqttSection,
        outbox: Outbox,
        adapter_state: Callable[[], AdapterState] = lambda: "unknown",
        can_status: Callable[[], CanStatus | None] = lambda: None,
        vehicle_report: Callable[[], VehicleReport | None] = lambda: None,
        obdb_status: Callable[[], ObdbStatus | None] = lambda: None,
        connack_timeout_s: float = 5.0,
        fences: FenceStore | None = None,
    ) -> None:
        self.device = device
        self.fences = fences
        self.settings = settings
        self.outbox = outbox
        self.adapter_state = adapter_state
        self.can_status = can_status
        self.vehicle_report = vehicle_report
        self.obdb_status = obdb_status
        self.reconnect_min_s = settings.reconnect_min_s
        self.reconnect_max_s = max(settings.reconnect_min_s, settings.reconnect_max_s)
        self._backoff = Backoff(self.reconnect_min_s, self.reconnect_max_s)
        self.last_reconnect_delay_s = 0.0
        self._key = device.key_bytes()
        self._hello_nonce: str | None = None
        self._hello_sent = 0.0
        self.high_water_adopted: int | None = None
        # amqtt (3.1.1 only) never answers an MQTT 5 CONNECT that carries a will.
        self.connack_timeout_s = connack_timeout_s
        self.counters: Counter[str] = Counter()
        self.protocol = (
            MQTTProtocolVersion.MQTTv311
            if settings.protocol == "3.1.1"
            else MQTTProtocolVersion.MQTTv5
        )
        self.topics = {kind: topic(device.tenant, device.id, kind) for kind in Kind}
        self._inflight: dict[int, float] = {}
        # The broker URL in use: mqtt.url, or one of mqtt.failover_urls after a loss.
        self._url_index = 0
        self._switch_broker = False
        # When the broker last confirmed a publish (PUBACK) and when we last sent one: a broker
        # that takes publishes but never confirms them (a cluster node whose storage timed out)
        # would fill paho's in-flight window for good; the uplink then reconnects.
        self._last_puback = 0.0
        self._last_sent = 0.0
        # When the cloud last answered (any ack arrived) on this connection.
        self._last_answer = 0.0
        self._ready = False
        self._fallback = False
        self._got_connack = False
        self._ever_connacked = False
        self._socket_since: float | None = None
        self._closed_before_connack = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._client: mqtt.Client | None = None
        # Set by whoever handles the cloud's commands (edge/device_runner.py): called in the
        # event loop with each payload received on the device's cmd topic.
        self.on_command: Callable[[bytes], None] | None = None
        # What the device runs (profile, versions of updated parts), for the status message.
        self.running: dict[str, Any] = {}

    @property
    def url(self) -> str:
        """Return the URL of the broker this uplink connects to now."""
        return self.settings.urls[self._url_index]

    @property
    def ready(self) -> bool:
        """Return True while connected and subscribed to the ack topic."""
        return self._ready

    @property
    def unacked(self) -> int:
        """Return how many published batches wait for the cloud's ack."""
        return len(self._inflight)

    def wake(self) -> None:
        """Ask the uplink to look at the outbox now (call from the event loop's thread)."""
        if self._wake is not None:
            self._wake.set()

    def _status(self, online: bool) -> bytes:
        return encode(
            Status(
                device_id=self.device.id,
                online=online,
                time_ms=_now_ms(),
                agent_version=VERSION,
                adapter=self.adapter_state(),
                buffered_batches=len(self.outbox),
                can=self.can_status(),
                vehicle=self.vehicle_report(),
                obdb=self.obdb_status(),
                **self.running,
            )
        )

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fl-{self.device.tenant}-{self.device.id}",
            protocol=self.protocol,
        )
        if self.settings.username is not None:
            password = self.settings.password
            client.username_pw_set(
                self.settings.username, password.get_secret_value() if password else None
            )
        if self.settings.url_uses_tls(self.url):
            client.tls_set()
        client.will_set(self.topics[Kind.STATUS], self._status(online=False), qos=1, retain=True)
        self._jitter_next_reconnect(client)
        client.max_inflight_messages_set(self.settings.max_inflight + 2)  # + hello and status
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _jitter_next_reconnect(self, client: mqtt.Client) -> None:
        """Make paho's next reconnect wait one jittered, exponentially growing delay (paho's
        own doubling has no jitter; with min = max it waits exactly the delay given)."""
        delay = self._backoff.next()
        client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]  # paho sleeps floats
        self.last_reconnect_delay_s = delay

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        self._jitter_next_reconnect(client)
        if client is self._client:
            self._post(self._try_next_broker)

    def _try_next_broker(self) -> None:
        """With failover URLs, make the run loop move to the next broker of the cluster."""
        if len(self.settings.urls) > 1:
            self._reconnect()

    def _reconnect(self) -> None:
        """Make the run loop close this connection and open a new one (to the next broker
        of the cluster where there are failover URLs)."""
        self._switch_broker = True
        self.wake()

    def _connect_properties(self) -> Properties | None:
        if self.protocol != MQTTProtocolVersion.MQTTv5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        return props

    def _publish_properties(self) -> Properties | None:
        if self.protocol != MQTTProtocolVersion.MQTTv5 or not self.settings.message_expiry_s:
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = self.settings.message_expiry_s
        return props

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._got_connack = self._ever_connacked = True
        if reason.is_failure:
            if (
                self.protocol == MQTTProtocolVersion.MQTTv5
                and reason.value == _UNSUPPORTED_PROTOCOL
            ):
                self._fallback = True
                self._post(self.wake)
                return
            self.counters["connect_refused"] += 1
            log.warning("broker %s refused the connection: %s", self.url, reason)
            return
        self.counters["connects"] += 1
        self._backoff.reset()
        self._jitter_next_reconnect(client)
        qos: int = self.settings.subscribe_qos
        client.subscribe([(self.topics[kind], qos) for kind in (Kind.ACK, Kind.CMD, Kind.FENCES)])
        client.publish(self.topics[Kind.STATUS], self._status(online=True), qos=1, retain=True)
        log.info("connected to %s (MQTT %s)", self.url, self.protocol.name)

    def _on_publish(self, client: mqtt.Client, *_args: Any) -> None:
        if client is self._client:
            self._last_puback = time.monotonic()  # a float store: safe from paho's thread

    def _answers_stalled(self, now: float) -> bool:
        """Return True when batches or a hello wait and the cloud has answered nothing on this
        connection for three ack timeouts: another connection (another cluster node) may
        carry the answers this one loses."""
        waiting = bool(self._inflight) or self._hello_nonce is not None
        return waiting and now - self._last_answer > 3 * self.settings.ack_timeout_s

    def _publishes_stalled(self, now: float) -> bool:
        """Return True when publishes went unconfirmed for twice the ack timeout."""
        stall_s = 2 * self.settings.ack_timeout_s
        return self._last_sent > self._last_puback and now - self._last_puback > stall_s

    def _on_subscribe(
        self, client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, *_rest: Any
    ) -> None:
        if client is not self._client:
            return
        if any(getattr(r, "is_failure", False) for r in reasons or []):
            # Without its ack subscription the device would resend forever unheard (a cluster
            # node can refuse it while its storage elects a leader): reconnect and ask again.
            self.counters["subscribe_refused"] += 1
            log.warning("%s refused this device's subscriptions; reconnecting", self.url)
            self._post(self._reconnect)
            return
        self._post(self._set_ready, True)

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, *_rest: Any) -> None:
        if client is not self._client:
            return
        self._jitter_next_reconnect(client)
        if not self._got_connack and self.protocol == MQTTProtocolVersion.MQTTv5:
            self._closed_before_connack += 1
            if self._closed_before_connack >= _CLOSED_BEFORE_CONNACK_LIMIT:
                self._fallback = True
        self._got_connack = False
        self._post(self._set_ready, False)
        self._post(self._try_next_broker)

    def _reject(self, why: str, *args: object) -> None:
        self.counters["acks_rejected"] += 1
        if _worth_logging(self.counters["acks_rejected"]):
            log.warning(
                "ignoring an ack: " + why + " (%d ignored so far)",
                *args,
                self.counters["acks_rejected"],
            )

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics[Kind.CMD]:
            if message.payload and self.on_command is not None:
                self._post(self.on_command, bytes(message.payload))  # a signed update
            return
        if message.topic == self.topics[Kind.FENCES]:
            if message.payload:
                self._on_fences(bytes(message.payload))
            return
        try:
            ack = decode(bytes(message.payload), Ack)
        except CodecError as exc:
            self._reject("malformed: %s", exc)
            return
        if ack.device_id != self.device.id:
            self._reject("it names device %r", ack.device_id)
            return
        if self._key is not None:
            if not verify(self._key, ack):
                self._reject("its signature does not verify with this device's key")
                return
            if ack.seqs and len(ack.digests) != len(ack.seqs):
                self._reject("it carries no digest per seq")
                return
        self._post(self._apply_ack, ack)

    def _on_fences(self, payload: bytes) -> None:
        try:
            fence_set = decode(payload, GeofenceSet)
        except CodecError as exc:
            self.counters["commands_rejected"] += 1
            log.warning("ignoring a geofence set: %s", exc)
            return
        if fence_set.device_id != self.device.id:
            self.counters["commands_rejected"] += 1
            return
        if self.fences is not None:
            self._post(self._store_fences, fence_set)

    def _store_fences(self, fence_set: GeofenceSet) -> None:
        assert self.fences is not None
        try:
            if self.fences.apply(fence_set):
                self.counters["geofence_sets"] += 1
        except OSError as exc:
            self.counters["geofence_store_errors"] += 1
            log.warning("could not store the geofences: %s", exc)

    def _set_ready(self, ready: bool) -> None:
        if ready == self._ready:
            return
        self._ready = ready
        self._inflight.clear()
        self._last_puback = self._last_sent = self._last_answer = time.monotonic()
        self._hello_sent = 0.0  # ask again on every connect
        if not ready:
            log.warning("lost the connection to %s; buffering in the outbox", self.url)
        self.wake()

    def _apply_ack(self, ack: Ack) -> None:
        self._last_answer = time.monotonic()
        if ack.nonce:
            if ack.nonce == self._hello_nonce:
                self._adopt(ack.high_water)
            return  # an answer to an older hello: its mark may be stale
        if ack.digests:
            held = self.outbox.digests(ack.seqs)
            mine = [s for s, d in zip(ack.seqs, ack.digests, strict=True) if held.get(s) == d]
            other = [
                s for s, d in zip(ack.seqs, ack.digests, strict=True) if s in held and held[s] != d
            ]
        else:
            mine, other = ack.seqs, []
        self.counters["acked"] += self.outbox.ack(mine)
        for seq in ack.seqs:
            self._inflight.pop(seq, None)
        if ack.high_water:  # first, so that a renumbered batch goes above the mark at once
            self.outbox.raise_next_seq(ack.high_water)
        if other:
            renumbered = self.outbox.renumber(other, with_seq)
            self.counters["seq_collisions"] += renumbered
            log.warning(
                "the cloud holds other data under seqs %s; sending these batches again "
                "under new seqs",
                other[:10],
            )
        self.wake()

    def _adopt(self, high_water: int) -> None:
        first = self.high_water_adopted is None
        renumbered = self.outbox.adopt_high_water(high_water, with_seq)
        self._hello_nonce = None
        self.high_water_adopted = high_water
        if first or renumbered:
            log.info(
                "the cloud's high-water mark for %s is %d; next seq %d (%d stored batches "
                "renumbered)",
                self.device.id,
                high_water,
                self.outbox.next_seq,
                renumbered,
            )
        self.wake()

    def _send_hello(self) -> None:
        assert self._client is not None
        if self._hello_nonce is None:
            self._hello_nonce = secrets.token_hex(16)
        else:
            self.counters["hellos_unanswered"] += 1
            if _worth_logging(self.counters["hellos_unanswered"]):
                log.warning(
                    "the cloud has not answered this device's hello (%d times); is device %r "
                    "registered in tenant %r, and does the cloud run?%s",
                    self.counters["hellos_unanswered"],
                    self.device.id,
                    self.device.tenant,
                    " Nothing is published until it answers." if not self.outbox.confirmed else "",
                )
        hello = Hello(
            device_id=self.device.id,
            nonce=self._hello_nonce,
            next_seq=min(self.outbox.next_seq, MAX_SEQ + 1),
        )
        self._client.publish(self.topics[Kind.HELLO], encode(hello), qos=1)
        self._hello_sent = self._last_sent = time.monotonic()
        self.counters["hellos"] += 1

    def _publish(self, batch: StoredBatch) -> None:
        assert self._client is not None
        kind = Kind.EVENTS if batch.kind == "events" else Kind.TELEMETRY
        self._client.publish(
            self.topics[kind], batch.payload, qos=1, properties=self._publish_properties()
        )
        self._last_sent = time.monotonic()

    def pump(self) -> None:
        """Republish timed-out batches and fill the in-flight window from the outbox."""
        if not self._ready or self._client is None:
            return
        now = time.monotonic()
        if self._publishes_stalled(now):
            self.counters["publish_stalls"] += 1
            log.warning(
                "%s confirmed no publish for %.0f s; reconnecting",
                self.url,
                now - self._last_puback,
            )
            self._last_puback = self._last_sent = now
            self._reconnect()
            return
        if self._answers_stalled(now):
            self.counters["answer_stalls"] += 1
            if _worth_logging(self.counters["answer_stalls"]):
                log.warning(
                    "no answer from the cloud through %s for %.0f s; reconnecting (%d times)",
                    self.url,
                    now - self._last_answer,
                    self.counters["answer_stalls"],
                )
            self._last_answer = now
            self._reconnect()
            return
        unconfirmed = not self.outbox.confirmed
        low = self.outbox.seq_space_low
        if low and self._hello_nonce is None:
            self.counters["seq_space_low"] += 1
            if _worth_logging(self.counters["seq_space_low"]):
                log.error(
                    "seq space nearly used up (next seq %d); asking the cloud for its "
                    "high-water mark",
                    self.outbox.next_seq,
                )
        asking = self._hello_nonce is not None
        if self._hello_sent == 0.0 or (
            (asking or low) and now - self._hello_sent >= _HELLO_RETRY_S
        ):
            self._send_hello()
        if unconfirmed:
            return  # a new outbox publishes nothing before the cloud's mark is known
        window = self.settings.max_inflight
        for batch in self.outbox.pending(limit=window + len(self._inflight)):
            sent = self._inflight.get(batch.seq)
            if sent is None:
                if len(self._inflight) >= window:
                    continue
                self.counters["published"] += 1
            elif now - sent >= self.settings.ack_timeout_s:
                self.counters["republished"] += 1
            else:
                continue
            self._publish(batch)
            self._inflight[batch.seq] = now

    def publish_status(self) -> None:
        """Publish the retained online status again (e.g. when the adapter state changed)."""
        if self._ready and self._client is not None:
            self._client.publish(
                self.topics[Kind.STATUS], self._status(online=True), qos=1, retain=True
            )

    def _start_client(self) -> None:
        self._client = self._make_client()
        self._got_connack = self._ever_connacked = False
        self._socket_since = None
        self._closed_before_connack = 0
        v5 = self.protocol == MQTTProtocolVersion.MQTTv5
        host, port = self.settings.endpoint(self.url)
        self._client.connect_async(
            host,
            port,
            keepalive=self.settings.keepalive_s,
            clean_start=self.settings.session_expiry_s == 0
            if v5
            else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._connect_properties(),
        )
        self._client.loop_start()

    def _close(self, client: mqtt.Client, say_offline: bool) -> None:
        """Say offline (if asked), disconnect and join paho's thread; blocking, so run it
        off the event loop."""
        if say_offline:
            info = client.publish(
                self.topics[Kind.STATUS], self._status(online=False), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError) as exc:
                log.debug("offline status not confirmed: %s", exc)
        client.disconnect()
        client.loop_stop()

    async def _stop_client(self, say_offline: bool) -> None:
        client, self._client = self._client, None
        ready, self._ready = self._ready, False
        self._inflight.clear()
        if client is not None:
            await asyncio.to_thread(self._close, client, say_offline and ready)

    def _v5_unanswered(self) -> bool:
        """Return True once an MQTT 5 CONNECT has waited too long on an open socket."""
        if (
            self.protocol != MQTTProtocolVersion.MQTTv5
            or self._ever_connacked
            or self._client is None
            or self._client.socket() is None
        ):
            self._socket_since = None
            return False
        now = time.monotonic()
        if self._socket_since is None:
            self._socket_since = now
        return now - self._socket_since > self.connack_timeout_s

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the outbox flowing to the broker until ``stop`` is set; return after a clean
        disconnect that leaves the retained status offline."""
        if self._key is None:
            log.warning(
                "device.key is not set: acks are not verified, so anyone who can publish on "
                "this device's ack topic can make it delete data (docs/security.md)"
            )
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._start_client()
        try:
            while not stop.is_set():
                if self.settings.protocol == "auto" and (self._fallback or self._v5_unanswered()):
                    self._fallback = False
                    log.warning("%s refuses MQTT 5; using MQTT 3.1.1", self.url)
                    await self._stop_client(say_offline=False)
                    self.protocol = MQTTProtocolVersion.MQTTv311
                    self._start_client()
                if self._switch_broker:
                    self._switch_broker = False
                    await self._stop_client(say_offline=False)
                    if len(self.settings.urls) > 1:
                        self._url_index = (self._url_index + 1) % len(self.settings.urls)
                        self.counters["broker_switches"] += 1
                        log.warning("trying the next broker of the cluster: %s", self.url)
                    self._start_client()
                self.pump()
                self._wake.clear()
                waiters = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                _, pending = await asyncio.wait(
                    waiters, timeout=_TICK_S, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in pending:
                    waiter.cancel()
        finally:
            await self._stop_client(say_offline=True)
            self._loop = None
