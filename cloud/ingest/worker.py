"""Ingest workers: drain the queue in chunks, commit each chunk, then ack it.

Order per chunk: one database transaction; after COMMIT, the MQTT PUBACK of every message
and one ``Ack`` per device on ``fl/v1/{tenant}/{device}/ack``. A chunk whose transaction
fails is retried, unacked, until the database is back, so nothing is acked that is not stored.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
from paho.mqtt.enums import MQTTProtocolVersion

from fleetlink.cloud import metrics
from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.ingest.dead_letters import DeadLetterLimits, prune
from fleetlink.cloud.ingest.inbound import DeadLetter, Inbound, IngestRules
from fleetlink.cloud.ingest.mqtt_source import MqttSource
from fleetlink.cloud.ingest.nats_source import NatsPlan, NatsSource
from fleetlink.cloud.ingest.protocol import (
    BrokerAddress,
    SubscriptionPlan,
    broker_offers_mqtt5,
    parse_mqtt_url,
    plan_subscription,
)
from fleetlink.cloud.ingest.refusal_log import RateLimitedLog
from fleetlink.cloud.ingest.source import IngestSource
from fleetlink.cloud.ingest.store import ChunkResult, ChunkStore, DeviceAcks
from fleetlink.cloud.ingest.supervision import SupervisedTask
from fleetlink.cloud.settings import CloudSettings
from fleetlink.shared.codec import encode_body
from fleetlink.shared.logs import log_context
from fleetlink.shared.messages import SCHEMA_VERSION
from fleetlink.shared.signing import mac_of_fields
from fleetlink.shared.topics import Kind, topic

log = logging.getLogger(__name__)

# How often the writer looks for new messages: a few ms of added latency, and no wake-up of
# the event loop from the MQTT thread per message.
_POLL_S = 0.004
_REFUSED_BY_DATABASE = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# Anything else from the database (a server error that is not about the data) is retried too.
_RETRYABLE = (*DATABASE_UNAVAILABLE, asyncpg.PostgresError)


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    max_batches: int = 200
    max_wait_ms: int = 50
    queue_size: int = 2000
    max_seq_jump: int = 10_000_000
    reconnect_s: tuple[int, int] = (1, 4)
    receive_maximum: int = 65535
    publish_inflight: int = 1000
    ack_qos: int = 0


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """What ``/readyz`` reports about one worker."""

    client_id: str
    connected: bool
    writer_alive: bool
    database_ok: bool
    in_hand: int
    lag_s: float
    last_commit_age_s: float | None
    restarts: int
    window: str = ""
    peak_held: int = 0

    @property
    def ready(self) -> bool:
        return self.connected and self.writer_alive and self.database_ok


# Builds a worker's source from its capacity (an MqttSource when none is given).
SourceFactory = Callable[[int], IngestSource]


class IngestWorker:
    """One broker connection (its source) plus the writer task that commits what it receives."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        address: BrokerAddress,
        plan: SubscriptionPlan,
        client_id: str,
        limits: ChunkLimits,
        session_expiry_s: int = 0,
        rules: IngestRules | None = None,
        on_commit: Callable[[ChunkResult], None] | None = None,
        source: SourceFactory | None = None,
    ) -> None:
        self._pool = pool
        self._on_commit = on_commit
        self._limits = limits
        self.source: IngestSource = (
            source(limits.queue_size)
            if source is not None
            else MqttSource(
                address,
                plan,
                client_id,
                limits.queue_size,
                session_expiry_s,
                rules,
                limits.reconnect_s,
                limits.receive_maximum,
                limits.publish_inflight,
            )
        )
        self._store = ChunkStore(limits.max_seq_jump)
        self.totals: Counter[str] = Counter()
        self._writer = SupervisedTask(f"ingest writer {client_id}", self._run, self.totals)
        # The chunk taken from the queue and not yet committed: a restarted writer commits it
        # first, so a crash loses nothing and the MQTT thread's slots are released once.
        self._in_hand: list[Inbound] | None = None
        self._refusals = RateLimitedLog(log)
        self._failing = False
        self._last_commit: float | None = None
        self._name = client_id
        metrics.INGEST_QUEUED.labels(client_id).set_function(lambda: self.source.held)
        metrics.INGEST_CONNECTED.labels(client_id).set_function(
            lambda: 1 if self.source.connected else 0
        )

    @property
    def connected(self) -> bool:
        return self.source.connected

    def start(self) -> None:
        self.source.start()
        self._writer.start()

    async def stop(self) -> None:
        """Stop the writer (an uncommitted chunk stays unacked with the broker), disconnect."""
        await self._writer.stop()
        await asyncio.to_thread(self.source.stop)

    def health(self) -> WorkerHealth:
        """Return this worker's connection, writer and lag, for ``/readyz``."""
        in_hand = self._in_hand or []
        lag = 0.0
        if in_hand:
            lag = (datetime.now(UTC) - in_hand[0].delivery.received_at).total_seconds()
        return WorkerHealth(
            client_id=self.source.client_id,
            connected=self.source.connected,
            writer_alive=self._writer.alive,
            database_ok=not self._failing,
            in_hand=len(in_hand) + self.source.waiting,
            lag_s=round(max(lag, 0.0), 3),
            last_commit_age_s=(
                None
                if self._last_commit is None
                else round(time.monotonic() - self._last_commit, 3)
            ),
            restarts=self._writer.restarts,
            window=self.source.window.describe() if self.source.window else "",
            peak_held=self.source.peak_held,
        )

    async def _next_chunk(self) -> list[Inbound]:
        """Return the next chunk: what has arrived, up to ``max_batches``.

        The chunk closes ``max_wait_ms`` after its oldest message *arrived* (not after the
        writer looked), so under load, when messages waited during the previous commit, it
        closes at once and grows with the backlog, keeping the ack latency near one commit.
        """
        limit = self._limits.max_batches
        items: list[Inbound] = []
        wait = timedelta(milliseconds=self._limits.max_wait_ms)
        while True:
            items += self.source.take(limit - len(items))
            if len(items) >= limit:
                return items
            if items and datetime.now(UTC) - items[0].delivery.received_at >= wait:
                return items
            await asyncio.sleep(_POLL_S)

    async def _run(self) -> None:
        while True:
            if self._in_hand is None:
                self._in_hand = await self._next_chunk()
            began = time.perf_counter()
            committed = await self._commit(self._in_hand)
            metrics.INGEST_COMMIT.observe(time.perf_counter() - began)
            metrics.INGEST_CHUNK.observe(len(self._in_hand))
            self._in_hand = None
            self._last_commit = time.monotonic()
            for part, result in committed:
                self._after_commit(part, result)

    async def _commit(self, items: list[Inbound]) -> list[tuple[list[Inbound], ChunkResult]]:
        """Commit ``items``; a chunk the database refuses is halved until the culprit is alone,
        and that one is dead-lettered, so one poison message cannot stall the ingest."""
        try:
            return [(items, await self._commit_with_retry(items))]
        except _REFUSED_BY_DATABASE as exc:
            if len(items) > 1:
                half = len(items) // 2
                return await self._commit(items[:half]) + await self._commit(items[half:])
            item = items[0]
            letter = DeadLetter(
                item.delivery,
                f"the database refused it: {exc}",
                getattr(item, "topic", None),
                getattr(item, "seq", None),
            )
            return [(items, await self._commit_with_retry([letter]))]

    async def _commit_with_retry(self, items: list[Inbound]) -> ChunkResult:
        delay = 0.2
        while True:
            try:
                async with self._pool.acquire() as conn:
                    result = await self._store.write(conn, items)
            except _REFUSED_BY_DATABASE:
                raise
            except asyncpg.DeadlockDetectedError:
                await asyncio.sleep(0.01)
                continue
            except _RETRYABLE as exc:
                metrics.INGEST_DB_FAILURES.inc()
                if not self._failing:
                    log.error("ingest cannot write to the database, retrying: %s", exc)
                    self._failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._failing:
                log.info("ingest writes to the database again")
                self._failing = False
            return result

    def _after_commit(self, items: list[Inbound], result: ChunkResult) -> None:
        try:
            if self._on_commit is not None and result.new:
                try:
                    self._on_commit(result)
                except Exception:
                    # The batch is stored; a failing observer must not stop ingest or its acks.
                    self.totals["on_commit_errors"] += 1
                    log.exception("the live feed failed on a committed chunk")
            self._publish_outcome(items, result)
        finally:
            self.totals.update(result.counters)
            self.source.release(len(items))
            self._observe(items, result)

    def _observe(self, items: list[Inbound], result: ChunkResult) -> None:
        now = datetime.now(UTC)
        oldest = 0.0
        for item in items:
            waited = (now - item.delivery.received_at).total_seconds()
            oldest = max(oldest, waited)
            metrics.INGEST_ACK_LATENCY.observe(waited)
        metrics.INGEST_LAG.labels(self._name).set(oldest)
        metrics.INGEST_MESSAGES.labels(self._name).inc(len(items))
        for name, count in result.counters.items():
            if count:
                metrics.INGEST_OUTCOMES.labels(name).inc(count)

    def _publish_outcome(self, items: list[Inbound], result: ChunkResult) -> None:
        for item in items:
            self.source.ack(item.delivery.mid, item.delivery.qos)
        for acks in result.acks.values():
            for payload in ack_payloads(acks):
                self.source.publish(
                    topic(acks.tenant, acks.device, Kind.ACK), payload, qos=self._limits.ack_qos
                )
        for refused in result.refused:
            with log_context(device_id=refused.device or "?"):
                self._refusals.warning(
                    "refused %s from %s: %s",
                    refused.delivery.topic[:200],
                    refused.device or "?",
                    refused.reason,
                )


def ack_payloads(acks: DeviceAcks) -> list[bytes]:
    """Return the framed ``Ack`` messages that tell one device what a chunk did: one for its
    seqs, one per hello it asked; each signed with the device's key when it has one.

    Built as the model's wire form directly (its fields, in its order), not through the model,
    whose validation and dumps cost more than the rest of an ack on this hot path (D106);
    tests/cloud/test_ack_payloads.py checks that these are the model's bytes exactly.
    """
    bodies: list[dict[str, Any]] = []
    counter = acks.first_counter
    if acks.seqs:
        bodies.append(_ack_fields(acks, acks.seqs, acks.digests, counter, ""))
        counter += 1
    for nonce in acks.nonces:
        bodies.append(_ack_fields(acks, [], [], counter, nonce))
        counter += 1
    for body in bodies:
        body["mac"] = "" if acks.key is None else mac_of_fields(acks.key, body)
    return [encode_body(body) for body in bodies]


def _ack_fields(
    acks: DeviceAcks, seqs: list[int], digests: list[str], counter: int, nonce: str
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "device_id": acks.device,
        "seqs": seqs,
        "high_water": acks.high_water,
        "digests": digests,
        "counter": counter,
        "nonce": nonce,
    }


def ingest_rules(settings: CloudSettings) -> IngestRules:
    """Return the clock window the settings ask for."""
    return IngestRules(
        accept_past=timedelta(days=settings.ingest_accept_past_days),
        accept_future=timedelta(seconds=settings.ingest_accept_future_s),
        publisher_property=settings.mqtt_publisher_property,
    )


def dead_letter_limits(settings: CloudSettings) -> DeadLetterLimits:
    """Return the dead-letter caps and retention the settings ask for."""
    return DeadLetterLimits(
        settings.dead_letter_max_rows,
        settings.dead_letter_max_bytes,
        timedelta(days=settings.dead_letter_retention_days),
    )


class IngestService:
    """All ingest workers of this process, sharing one subscription plan."""

    def __init__(
        self,
        settings: CloudSettings,
        pool: asyncpg.Pool,
        on_commit: Callable[[ChunkResult], None] | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._on_commit = on_commit
        self.workers: list[IngestWorker] = []
        self.plan: SubscriptionPlan | None = None
        self.counters: Counter[str] = Counter()
        self._pruner = SupervisedTask("dead-letter pruning", self._prune_forever, self.counters)
        self.limits = dead_letter_limits(settings)
        self.rules = ingest_rules(settings)

    async def _prune_forever(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    self.counters["dead_letters_dropped"] += await prune(conn, self.limits)
            except DATABASE_UNAVAILABLE:
                pass  # the writers report the outage; pruning waits for the next round
            await asyncio.sleep(self._settings.dead_letter_prune_every_s)

    @property
    def connected(self) -> bool:
        return bool(self.workers) and all(w.connected for w in self.workers)

    def health(self) -> list[WorkerHealth]:
        return [w.health() for w in self.workers]

    async def start(self, connect_timeout_s: float = 10.0) -> None:
        """Probe the broker, choose the plan, start the workers and wait until subscribed.

        Raises IngestConfigError if the settings ask for what the broker cannot do, OSError
        if the broker is unreachable, TimeoutError if a worker did not subscribe in time.
        """
        s = self._settings
        if s.ingest_source == "nats":
            await self._start_nats(connect_timeout_s)
            return
        address = parse_mqtt_url(s.mqtt_url.get_secret_value())
        offers_v5 = await asyncio.to_thread(broker_offers_mqtt5, address)
        self.plan = plan_subscription(s.shared_subscription, offers_v5, s.mqtt_share_group)
        count = s.ingest_workers
        if count > 1 and not self.plan.shared:
            log.warning(
                "%d ingest workers without a shared subscription would each store "
                "every message once; running one",
                count,
            )
            count = 1
        base_id = s.mqtt_client_id or f"fleetlink-ingest-{socket.gethostname()}"
        limits = self._chunk_limits()
        for index in range(count):
            worker = IngestWorker(
                self._pool,
                address,
                self.plan,
                f"{base_id}-{index}",
                limits,
                s.mqtt_session_expiry_s,
                self.rules,
                self._on_commit,
            )
            worker.start()
            self.workers.append(worker)
        self._pruner.start()
        for worker in self.workers:
            if not await worker.source.wait_connected(connect_timeout_s):
                raise TimeoutError(
                    f"ingest worker {worker.source.client_id} did not connect to "
                    f"{address.host}:{address.port} within {connect_timeout_s:.0f} s"
                )

    def _chunk_limits(self) -> ChunkLimits:
        s = self._settings
        return ChunkLimits(
            s.ingest_max_batches,
            s.ingest_max_wait_ms,
            s.ingest_queue_size,
            s.ingest_max_seq_jump,
            (s.mqtt_reconnect_min_s, max(s.mqtt_reconnect_min_s, s.mqtt_reconnect_max_s)),
            s.mqtt_receive_maximum,
            s.mqtt_publish_inflight,
            s.mqtt_ack_qos,
        )

    async def _start_nats(self, connect_timeout_s: float) -> None:
        """Start ``ingest_workers`` workers on the shared JetStream consumer (every worker of
        every process competes for the same messages, so any count splits the load).

        Raises TimeoutError if a worker did not bind to the consumer in time.
        """
        s = self._settings
        servers = s.nats_servers()
        first = urlsplit(servers[0])
        nats_plan = NatsPlan(
            servers=tuple(servers),
            stream=s.nats_stream,
            consumer=s.nats_consumer,
            replicas=s.nats_stream_replicas,
            ack_wait_s=s.nats_ack_wait_s,
        )
        limits = self._chunk_limits()
        base_id = s.mqtt_client_id or f"fleetlink-ingest-{socket.gethostname()}"
        # The MQTT address and plan are unused by a NATS source; kept for the health report.
        address = BrokerAddress(first.hostname or "", first.port or 4222)
        self.plan = SubscriptionPlan(MQTTProtocolVersion.MQTTv311, shared=True)

        def factory(client_id: str) -> SourceFactory:
            return lambda capacity: NatsSource(
                nats_plan,
                client_id,
                capacity,
                self.rules,
                limits.reconnect_s,
                unquote(first.username) if first.username else None,
                unquote(first.password) if first.password else None,
            )

        for index in range(s.ingest_workers):
            client_id = f"{base_id}-{index}"
            worker = IngestWorker(
                self._pool,
                address,
                self.plan,
                client_id,
                limits,
                rules=self.rules,
                on_commit=self._on_commit,
                source=factory(client_id),
            )
            worker.start()
            self.workers.append(worker)
        self._pruner.start()
        for worker in self.workers:
            if not await worker.source.wait_connected(connect_timeout_s):
                raise TimeoutError(
                    f"ingest worker {worker.source.client_id} did not bind to the JetStream "
                    f"consumer {s.nats_stream}/{s.nats_consumer} on {', '.join(servers)} "
                    f"within {connect_timeout_s:.0f} s"
                )

    async def stop(self) -> None:
        await self._pruner.stop()
        for worker in self.workers:
            await worker.stop()
        self.workers.clear()

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for worker in self.workers:
            total.update(worker.totals)
        return total
