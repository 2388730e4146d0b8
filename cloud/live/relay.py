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

Only tenants someone watches are relayed (D104): each listening process writes the tenants its
hub watches to ``live_watchers`` (every ``_WATCH_REFRESH_S``, at once when one gets its first
client; rows expire after ``_WATCH_TTL_S``), and every notifying process reads that set every
``_WATCH_POLL_S``. Until it has read it (after a reconnect too) it relays everything, so a
client may miss at most the first ``_WATCH_POLL_S`` of messages after it connects.
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
_WATCH_POLL_S = 0.5
_WATCH_REFRESH_S = 5.0
_WATCH_TTL_S = 30.0


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

    def watches(self, tenant: str) -> bool:
        """Return False when no client can receive the tenant's messages (skip them)."""
        ...


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
        # The tenants some listening process watches; None until read (then all are relayed).
        self._watched: frozenset[str] | None = None

    def watches(self, tenant: str) -> bool:
        return self._watched is None or tenant in self._watched

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
                self._watched = None
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)

    def _log_lost(self, exc: BaseException) -> None:
        if self._backoff.attempt == 0:
            log.error("live relay cannot notify (%s: %s); retrying", type(exc).__name__, exc)
        self.counters["relay_connection_lost"] += 1

    async def _read_watched(self, conn: asyncpg.Connection) -> None:
        try:
            tenants = await conn.fetchval(
                "SELECT coalesce(array_agg(DISTINCT tenant_id), '{}') FROM live_watchers "
                "WHERE expires_at > now()"
            )
        except asyncpg.UndefinedTableError:  # not migrated yet: relay everything meanwhile
            self._watched = None
            return
        self._watched = frozenset(tenants)

    async def _send_loop(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        await self._read_watched(conn)
        next_read = loop.time() + _WATCH_POLL_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_read - loop.time()))
            if loop.time() >= next_read:
                await self._read_watched(conn)
                next_read = loop.time() + _WATCH_POLL_S
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
        self._listener_id = uuid.uuid4().hex
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
                await self._write_watched(conn)
                self.listening.set()
                await self._keep_watched(conn, lost)
                self.listening.clear()
                self._log_lost(ConnectionError("the listening connection closed"))
            except DATABASE_UNAVAILABLE as exc:
                self.listening.clear()
                self._log_lost(exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
            await asyncio.sleep(self._backoff.next())

    async def _keep_watched(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Write the hub's watched tenants every ``_WATCH_REFRESH_S``, and at once when one
        gets its first client, until the connection is lost."""
        newly = self._hub.newly_watched
        while not lost.is_set():
            waits = [asyncio.ensure_future(e.wait()) for e in (lost, newly)]
            try:
                await asyncio.wait(
                    waits, timeout=_WATCH_REFRESH_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiting in waits:
                    waiting.cancel()
            if not lost.is_set():
                newly.clear()
                await self._write_watched(conn)

    async def _write_watched(self, conn: asyncpg.Connection) -> None:
        """Replace this process's rows with the hub's watched tenants (and drop the rows of
        processes gone for a minute)."""
        with contextlib.suppress(asyncpg.UndefinedTableError):  # not migrated yet: next time
            await conn.execute(
                """WITH gone AS (DELETE FROM live_watchers
                                 WHERE listener = $1 AND tenant_id <> ALL($2::text[])
                                    OR listener <> $1 AND expires_at < now() - interval '1 minute')
                   INSERT INTO live_watchers (listener, tenant_id, expires_at)
                   SELECT $1, t, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS t
                   ON CONFLICT (listener, tenant_id)
                   DO UPDATE SET expires_at = EXCLUDED.expires_at""",
                self._listener_id,
                self._hub.watched_tenants(),
                _WATCH_TTL_S,
            )

    def _log_lost(self, exc: BaseException) -> None:
        if self._backoff.attempt == 0:
            log.error("live relay cannot listen (%s: %s); retrying", type(exc).__name__, exc)
        self.counters["relay_connection_lost"] += 1
