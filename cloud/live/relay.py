"""Live messages across processes: PostgreSQL NOTIFY out, LISTEN in.

With one process the ingest hands its live messages straight to the hub. With several (API
replicas, ingest processes of their own) every process that produces live messages sends them
on one channel with ``pg_notify``, and every process that serves ``/api/v1/live`` listens on
it and offers what arrives to its own hub. PostgreSQL is already shared by all of them, so no
other service is needed; live messages are best-effort (the data itself is committed), so a
lost connection is counted and the listening side ends its streams, and the clients that
reconnect get a ``reset`` and read the current state from the API.

A notification carries at most about 8,000 bytes, so a message is split into parts of
``_PART_BYTES``, each ``"<message id> <index> <count> <text>"``; notifications from one
session arrive in order, and parts are put together by message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from fleetlink.cloud.db.unavailable import DATABASE_UNAVAILABLE
from fleetlink.cloud.live.hub import LiveHub
from fleetlink.shared.backoff import Backoff

log = logging.getLogger(__name__)

CHANNEL = "fleetlink_live"
_PART_BYTES = 7000
# Messages held while the notifying connection is down; beyond that the oldest are dropped.
_PENDING_MAX = 10_000
# Parts of unfinished messages held by a listener (a producer that died mid-message).
_PARTIAL_MAX = 1_000


class LivePublisher(Protocol):
    """Where live messages go: the process's own hub, or the relay to every process."""

    def publish(
        self,
        tenant: str,
        event: str,
        data: dict[str, Any],
        vehicle_id: str | None = None,
        signals: Iterable[str] = (),
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class RelayedMessage:
    tenant: str
    event: str
    data: dict[str, Any]
    vehicle_id: str | None
    signals: tuple[str, ...]


def encode_parts(message_id: str, message: RelayedMessage) -> list[str]:
    """Return the notification payloads that carry ``message`` (one for most messages)."""
    text = json.dumps(
        [message.tenant, message.event, message.vehicle_id, message.signals, message.data],
        separators=(",", ":"),
        default=str,
        ensure_ascii=True,  # one byte a character, so parts are cut by length alone
    )
    pieces = [text[i : i + _PART_BYTES] for i in range(0, len(text), _PART_BYTES)] or [""]
    return [f"{message_id} {n} {len(pieces)} {piece}" for n, piece in enumerate(pieces)]


class PartsDecoder:
    """Puts parts back together; returns a message once its last part has arrived."""

    def __init__(self) -> None:
        self._partial: dict[str, list[str]] = {}
        self.counters: Counter[str] = Counter()

    def feed(self, payload: str) -> RelayedMessage | None:
        try:
            message_id, index_text, count_text, piece = payload.split(" ", 3)
            index, count = int(index_text), int(count_text)
        except ValueError:
            self.counters["relay_malformed"] += 1
            return None
        if count == 1:
            return self._decode(piece)
        parts = self._partial.setdefault(message_id, [])
        if len(parts) != index:  # a part went missing: this message cannot be rebuilt
            self._partial.pop(message_id, None)
            self.counters["relay_malformed"] += 1
            return None
        parts.append(piece)
        if index + 1 < count:
            if len(self._partial) > _PARTIAL_MAX:
                self._partial.pop(next(iter(self._partial)))
                self.counters["relay_partial_dropped"] += 1
            return None
        del self._partial[message_id]
        return self._decode("".join(parts))

    def _decode(self, text: str) -> RelayedMessage | None:
        try:
            tenant, event, vehicle_id, signals, data = json.loads(text)
            return RelayedMessage(tenant, event, data, vehicle_id, tuple(signals))
        except (ValueError, TypeError):
            self.counters["relay_malformed"] += 1
            return None


class PostgresRelay:
    """Sends live messages with ``pg_notify`` on a connection of its own.

    ``publish`` never waits: the message is queued and a task sends what is queued in one
    statement. ``start`` and ``stop`` own that task and its connection.
    """

    def __init__(self, dsn: str, reconnect_min_s: float = 0.5, reconnect_max_s: float = 10.0):
        self._dsn = dsn
        self._pending: deque[RelayedMessage] = deque(maxlen=_PENDING_MAX)
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._producer = uuid.uuid4().hex[:12]
        self._backoff = Backoff(reconnect_min_s, max(reconnect_min_s, reconnect_max_s))
        self._task: asyncio.Task[None] | None = None
        self.counters: Counter[str] = Counter()

    def publish(
        self,
        tenant: str,
        event: str,
        data: dict[str, Any],
        vehicle_id: str | None = None,
        signals: Iterable[str] = (),
    ) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.counters["relay_dropped"] += 1
        self._pending.append(RelayedMessage(tenant, event, data, vehicle_id, tuple(signals)))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live relay (notify)")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except DATABASE_UNAVAILABLE as exc:
                self._log_lost(exc)
                await asyncio.sleep(self._backoff.next())
                continue
            if self._backoff.attempt:
                log.info("live relay: notifying again")
            self._backoff.reset()
            try:
                await self._send_loop(conn)
            except DATABASE_UNAVAILABLE as exc:
                self._log_lost(exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)

    def _log_lost(self, exc: BaseException) -> None:
        if self._backoff.attempt == 0:
            log.error("live relay cannot notify (%s: %s); retrying", type(exc).__name__, exc)
        self.counters["relay_connection_lost"] += 1

    async def _send_loop(self, conn: asyncpg.Connection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            messages, self._pending = self._pending, deque(maxlen=_PENDING_MAX)
            payloads = [
                part
                for message in messages
                for part in encode_parts(f"{self._producer}.{next(self._ids)}", message)
            ]
            try:
                await conn.execute(
                    "SELECT pg_notify($1, part) FROM unnest($2::text[]) AS part", CHANNEL, payloads
                )
            except BaseException:
                # Sent again after the reconnect, ahead of what came meanwhile (the oldest
                # beyond the bound are dropped and counted).
                overflow = len(messages) + len(self._pending) - _PENDING_MAX
                messages.extend(self._pending)
                self._pending = deque(messages, maxlen=_PENDING_MAX)
                self.counters["relay_dropped"] += max(0, overflow)
                self._wake.set()
                raise
            self.counters["relayed"] += len(messages)


class LiveListener:
    """Listens on the channel and offers every message to this process's hub.

    When its connection is lost, the hub starts over (``LiveHub.restart``): the streams end and
    a client that resumes gets a ``reset``, since what was sent meanwhile never arrived here.
    """

    def __init__(
        self, dsn: str, hub: LiveHub, reconnect_min_s: float = 0.5, reconnect_max_s: float = 10.0
    ):
        self._dsn = dsn
        self._hub = hub
        self._decoder = PartsDecoder()
        self._backoff = Backoff(reconnect_min_s, max(reconnect_min_s, reconnect_max_s))
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.server_pid: int | None = None  # the listening connection's backend
        self.counters = self._decoder.counters

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live relay (listen)")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        message = self._decoder.feed(str(payload))
        if message is not None:
            self._hub.publish(
                message.tenant, message.event, message.data, message.vehicle_id, message.signals
            )
            self.counters["received"] += 1

    async def _run(self) -> None:
        first = True
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except DATABASE_UNAVAILABLE as exc:
                self._log_lost(exc)
                await asyncio.sleep(self._backoff.next())
                continue
            try:
                conn.add_termination_listener(lambda _c, ended=lost: ended.set())
                await conn.add_listener(CHANNEL, self._on_notification)
                self.server_pid = conn.get_server_pid()
                if not first:
                    log.info("live relay: listening again; open streams start over")
                    self._hub.restart()
                first = False
                self._backoff.reset()
                self.listening.set()
                await lost.wait()
                self.listening.clear()
                self._log_lost(ConnectionError("the listening connection closed"))
            except DATABASE_UNAVAILABLE as exc:
                self.listening.clear()
                self._log_lost(exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
            await asyncio.sleep(self._backoff.next())

    def _log_lost(self, exc: BaseException) -> None:
        if self._backoff.attempt == 0:
            log.error("live relay cannot listen (%s: %s); retrying", type(exc).__name__, exc)
        self.counters["relay_connection_lost"] += 1
