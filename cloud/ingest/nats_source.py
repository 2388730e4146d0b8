"""The NATS side of a worker: a JetStream pull consumer that every ingest process shares.

NATS's MQTT gateway (2.9) speaks MQTT 3.1.1 only, so there is no ``$share`` group. Instead a
work-queue stream captures the subjects the gateway maps device topics to
(``fl/v1/t/d/telemetry`` → ``fl.v1.t.d.telemetry``), and one durable pull consumer hands each
message to exactly one of the workers fetching from it (competing consumers). A message is
acked to JetStream only after its data is committed; one not acked within ``ack_wait_s`` (its
worker died) is delivered again to another, and the ``ingested_batches`` guard turns such a
second copy into a re-ack, never a second row. Acks to devices go out as plain NATS publishes,
which the gateway delivers to the devices' MQTT subscriptions (at QoS 0; a lost one makes the
device resend, which the guard answers again).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from fleetlink.cloud.ingest.inbound import DeadLetter, Delivery, Inbound, IngestRules, classify
from fleetlink.cloud.ingest.mqtt_source import FlowWindow
from fleetlink.cloud.ingest.protocol import INGESTED_KINDS
from fleetlink.shared.backoff import Backoff
from fleetlink.shared.topics import subscription

log = logging.getLogger(__name__)

_FETCH_MAX = 256
_FETCH_WAIT_S = 1.0
_SEND_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class NatsPlan:
    """Where the ingest reads from on a NATS cluster (from the ``FLEETLINK_NATS_*`` settings)."""

    servers: tuple[str, ...]
    stream: str = "FLEETLINK_INGEST"
    consumer: str = "fleetlink-ingest"
    replicas: int = 1
    ack_wait_s: float = 30.0
    max_age_s: float = 7 * 86_400.0

    @property
    def subjects(self) -> list[str]:
        """Return the NATS subjects of the ingested MQTT topics (``+`` becomes ``*``)."""
        return [
            mqtt_to_subject(subscription(kind, shared=False)).replace("+", "*")
            for kind in INGESTED_KINDS
        ]


def mqtt_to_subject(topic: str) -> str:
    """Return the NATS subject NATS's MQTT gateway uses for ``topic`` (``/`` becomes ``.``)."""
    return topic.replace("/", ".")


def subject_to_mqtt(subject: str) -> str:
    """Return the MQTT topic of a NATS ``subject`` (the inverse of ``mqtt_to_subject``)."""
    return subject.replace(".", "/")


class NatsSource:
    """One NATS connection pulling from the shared consumer; ``take`` returns what arrived.

    Call ``start`` from the event loop, ``release`` once per item taken and handled, and
    ``stop`` (from another thread, as the worker does) to disconnect.
    """

    def __init__(
        self,
        plan: NatsPlan,
        client_id: str,
        capacity: int,
        rules: IngestRules | None = None,
        reconnect_s: tuple[int, int] = (1, 4),
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.plan = plan
        self.client_id = client_id
        self._pending: list[Inbound] = []
        self._capacity = capacity
        self._free = capacity
        self.peak_held = 0
        self.window: FlowWindow | None = None  # JetStream's max_ack_pending sets the window
        self._slot_freed = asyncio.Event()
        self._rules = rules or IngestRules()
        self._backoff = Backoff(reconnect_s[0], max(reconnect_s))
        self._user = user
        self._password = password
        self._nc: NatsClient | None = None
        self._subscribed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._held: dict[int, Msg] = {}
        self._next_mid = 0
        self._outgoing: list[tuple[str, bytes] | Msg] = []
        self._flushing: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._subscribed and self._nc is not None and self._nc.is_connected

    def start(self) -> None:
        """Connect and pull in the background; reconnects and rebinds by itself."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"nats source {self.client_id}")

    async def wait_connected(self, timeout_s: float) -> bool:
        """Return True once bound to the consumer, False if ``timeout_s`` passed first."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.connected:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def stop(self) -> None:
        """Stop pulling and close the connection; held messages stay unacked in JetStream.

        Blocking: call it from a thread other than the event loop's (``asyncio.to_thread``).
        """
        if self._loop is None or self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)

    async def _close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._subscribed = False

    def release(self, count: int = 1) -> None:
        self._free += count
        self._slot_freed.set()

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one delivery to JetStream (call only after its data is committed)."""
        msg = self._held.pop(mid, None)
        if msg is not None:
            self._send(msg)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish on the subject of MQTT ``topic``; devices receive it over MQTT."""
        self._send((mqtt_to_subject(topic), payload))

    def _send(self, item: tuple[str, bytes] | Msg) -> None:
        self._outgoing.append(item)
        if self._flushing is None or self._flushing.done():
            assert self._loop is not None
            self._flushing = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self._outgoing:
            batch, self._outgoing = self._outgoing, []
            nc = self._nc
            if nc is None or nc.is_closed:
                return  # JetStream delivers the unacked messages again; devices resend
            for item in batch:
                try:
                    # Bounded: a send stuck on a dying connection must not hold up every later
                    # ack (JetStream redelivers what is not acked; devices resend).
                    sent = item.ack() if isinstance(item, Msg) else nc.publish(*item)
                    await asyncio.wait_for(sent, _SEND_TIMEOUT_S)
                except (nats.errors.Error, TimeoutError) as exc:
                    log.warning(
                        "ingest %s could not send to NATS: %s", self.client_id, exc or "timeout"
                    )

    async def _connect(self) -> tuple[NatsClient, JetStreamContext]:
        nc = await nats.connect(
            list(self.plan.servers),
            name=self.client_id,
            user=self._user,
            password=self._password,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            error_cb=self._on_error,
        )
        self._nc = nc
        js = nc.jetstream()
        await self._ensure_stream(js)
        return nc, js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the work-queue stream and the shared consumer if missing (every process
        does it; the same definition twice is accepted)."""
        plan = self.plan
        try:
            await js.stream_info(plan.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=plan.stream,
                    subjects=plan.subjects,
                    retention=RetentionPolicy.WORK_QUEUE,
                    storage=StorageType.FILE,
                    num_replicas=plan.replicas,
                    max_age=plan.max_age_s,
                )
            )
            log.info(
                "created the JetStream stream %s (%d replicas) on %s",
                plan.stream,
                plan.replicas,
                ", ".join(plan.subjects),
            )
        try:
            await js.consumer_info(plan.stream, plan.consumer)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(
                plan.stream,
                ConsumerConfig(
                    durable_name=plan.consumer,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=plan.ack_wait_s,
                    max_ack_pending=-1,
                ),
            )

    async def _on_disconnected(self) -> None:
        if self._subscribed:
            log.warning("ingest %s lost its NATS server; reconnecting", self.client_id)

    async def _on_reconnected(self) -> None:
        nc = self._nc
        log.info(
            "ingest %s reconnected to NATS at %s",
            self.client_id,
            nc.connected_url.netloc if nc is not None and nc.connected_url else "?",
        )

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client %s: %s", self.client_id, exc)

    async def _run(self) -> None:
        while True:
            try:
                nc, js = await self._connect()
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                delay = self._backoff.next()
                log.warning(
                    "ingest %s cannot reach NATS %s (%s); retrying in %.1f s",
                    self.client_id,
                    ", ".join(self.plan.servers),
                    exc or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            try:
                await self._pull(nc, js)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever the client raised (a fetch failing in a way not foreseen above), the
                # source starts over on a fresh connection instead of dying silently.
                log.warning(
                    "ingest %s stopped pulling (%s: %s); reconnecting",
                    self.client_id,
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(self._backoff.next())
            finally:
                self._subscribed = False
                if not nc.is_closed:
                    await nc.close()

    async def _pull(self, nc: NatsClient, js: JetStreamContext) -> None:
        """Fetch into the free slots until the connection closes for good."""
        sub = await js.pull_subscribe_bind(durable=self.plan.consumer, stream=self.plan.stream)
        self._subscribed = True
        log.info(
            "ingest %s pulls %s/%s via %s",
            self.client_id,
            self.plan.stream,
            self.plan.consumer,
            nc.connected_url.netloc if nc.connected_url else "?",
        )
        failing = False
        while not nc.is_closed:
            if self._free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                msgs = await sub.fetch(min(self._free, _FETCH_MAX), timeout=_FETCH_WAIT_S)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                # A node left: the stream's leader moves, the client reconnects; retry.
                if not failing:
                    log.warning("ingest %s cannot fetch (retrying): %s", self.client_id, exc)
                failing = True
                await asyncio.sleep(0.5)
                continue
            if failing:
                log.info("ingest %s fetches again", self.client_id)
                failing = False
            for msg in msgs:
                self._hand_over(msg)

    def _hand_over(self, msg: Msg) -> None:
        self._free -= 1
        self._next_mid += 1
        mid = self._next_mid
        self._held[mid] = msg
        delivery = Delivery(
            subject_to_mqtt(msg.subject), bytes(msg.data), mid, 1, datetime.now(UTC)
        )
        item: Inbound = classify(delivery, rules=self._rules)
        if delivery.topic.startswith("$"):
            item = DeadLetter(delivery, "not a Fleetlink topic")
        self._pending.append(item)
        self.peak_held = max(self.peak_held, self.held)

    def take(self, limit: int) -> list[Inbound]:
        """Return up to ``limit`` classified messages, oldest first, removing them."""
        items = self._pending[:limit]
        del self._pending[:limit]
        return items

    @property
    def waiting(self) -> int:
        """Messages classified and not yet taken by the writer."""
        return len(self._pending)

    @property
    def held(self) -> int:
        """Deliveries received and not yet released."""
        return self._capacity - self._free
