"""The live hub: what the ingest commits, fanned out to every subscribed client of a tenant.

Publishing is cheap and never waits: the message is serialised once, appended to the tenant's
bounded replay buffer and offered to each matching subscriber's bounded queue. A subscriber
whose queue is full is a slow client: it is dropped (its queue emptied, its stream ended), so
one slow reader never holds memory or slows anyone else. A reconnecting client sends the last
id it saw (``Last-Event-ID``) and gets what it missed from the replay buffer, or a ``reset``
when that is older than the buffer (or from before this process started).

A tenant nobody watches costs nothing (D104): ``watches`` says whether a tenant has a client,
or had one within ``idle_grace_s`` (so a client that reconnects soon resumes from the replay
buffer); the ingest asks it before it formats a live message. Once the grace is over the
tenant's buffer is emptied and messages for it are dropped until a client comes, and a client
that resumes from before that gets a ``reset``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LiveMessage:
    """One message on a tenant's stream; ``text`` is its JSON data and ``frame`` its whole
    SSE frame, both serialised once for every client."""

    id: str
    serial: int
    tenant: str
    event: str
    vehicle_id: str | None
    signals: frozenset[str]
    text: str
    frame: bytes

    @property
    def chunk(self) -> bytes:
        """The frame as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``)."""
        return b"%x\r\n%b\r\n" % (len(self.frame), self.frame)


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """Which messages a client asked for: None means all vehicles (or all signals)."""

    vehicles: frozenset[str] | None = None
    signals: frozenset[str] | None = None
    events: frozenset[str] | None = None

    def matches(self, message: LiveMessage) -> bool:
        if self.events is not None and message.event not in self.events:
            return False
        if self.vehicles is not None and message.vehicle_id not in self.vehicles:
            return False
        return not (
            self.signals is not None
            and message.event == "signals"
            and not (self.signals & message.signals)
        )


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connected client: its filter and its bounded queue (None in it ends the stream).

    ``on_drop`` is called when the hub drops the client, e.g. to abort its connection so that
    a write blocked on the stalled socket ends at once. With ``sink`` set, the hub hands each
    message to it at once instead of queueing it; a sink returns False when its client cannot
    take more (its bounded send buffer is full), and the client is dropped.
    """

    tenant: str
    filter: LiveFilter
    queue: asyncio.Queue[LiveMessage | None]
    reset: bool = False
    dropped: bool = False
    closed: bool = False  # the client went away by itself
    on_drop: Callable[[], None] | None = None
    sink: Callable[[LiveMessage], bool] | None = None

    async def next(self) -> LiveMessage | None:
        """Return the next message, or None when the hub dropped this client."""
        return await self.queue.get()


@dataclass(slots=True)
class _Tenant:
    subscribers: set[Subscriber] = field(default_factory=set)
    replay: deque[LiveMessage] = field(default_factory=deque)
    # When the last client left (None while one is connected).
    left_at: float | None = None
    # Set once the grace after the last client is over: messages are dropped, and a client
    # resuming from a serial up to ``gap_after`` gets a reset.
    unwatched: bool = False
    gap_after: int = 0


class LiveHub:
    """Per-tenant fan-out with bounded queues and a bounded replay buffer.

    Ids are ``<epoch>-<serial>``: the epoch is this hub's start time, so an id from another
    process (or before a restart) is recognised and answered with a ``reset``.
    """

    def __init__(
        self,
        queue_size: int = 256,
        replay_size: int = 1024,
        idle_grace_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1 or replay_size < 0:
            raise ValueError("queue_size must be >= 1 and replay_size >= 0")
        self.queue_size = queue_size
        self.replay_size = replay_size
        self.idle_grace_s = idle_grace_s
        self._clock = clock
        self.epoch = str(time.time_ns() // 1_000_000)
        self._serials = itertools.count(1)
        self._last_serial = 0
        self._tenants: dict[str, _Tenant] = {}
        self.counters: Counter[str] = Counter()
        # Set when a tenant nobody watched gets a client (the relay's listener waits on it).
        self.newly_watched = asyncio.Event()

    def watches(self, tenant: str) -> bool:
        """Return True if ``tenant`` has a client, or had one within ``idle_grace_s``."""
        entry = self._tenants.get(tenant)
        if entry is None:
            return False
        if entry.subscribers:
            return True
        if entry.unwatched:
            return False
        if entry.left_at is not None and self._clock() - entry.left_at < self.idle_grace_s:
            return True
        entry.unwatched = True
        entry.gap_after = self._last_serial
        entry.replay.clear()
        return False

    def watched_tenants(self) -> list[str]:
        """Return the tenants ``watches`` is True for, sorted."""
        return sorted(t for t in self._tenants if self.watches(t))

    def subscriber_count(self, tenant: str | None = None) -> int:
        if tenant is not None:
            entry = self._tenants.get(tenant)
            return len(entry.subscribers) if entry else 0
        return sum(len(t.subscribers) for t in self._tenants.values())

    def publish(
        self,
        tenant: str,
        event: str,
        data: dict[str, Any],
        vehicle_id: str | None = None,
        signals: Iterable[str] = (),
    ) -> LiveMessage | None:
        """Offer one message to the tenant's subscribers and keep it for replay (or drop it
        when nobody watches the tenant)."""
        entry = self._tenants.get(tenant)
        if entry is not None and entry.unwatched:
            self.counters["unwatched_dropped"] += 1
            return None
        serial = self._last_serial = next(self._serials)
        message_id = f"{self.epoch}-{serial}"
        # JSON escapes line breaks, so the data is always one SSE line.
        text = json.dumps(data, separators=(",", ":"), default=str)
        message = LiveMessage(
            message_id,
            serial,
            tenant,
            event,
            vehicle_id,
            frozenset(signals),
            text,
            f"id: {message_id}\nevent: {event}\ndata: {text}\n\n".encode(),
        )
        if entry is None:
            entry = self._tenants[tenant] = _Tenant(replay=deque(maxlen=self.replay_size))
            entry.left_at = self._clock()
        entry.replay.append(message)
        self.counters["published"] += 1
        slow: list[Subscriber] = []
        for subscriber in entry.subscribers:
            if not subscriber.filter.matches(message):
                continue
            if subscriber.sink is not None:
                if not subscriber.sink(message):
                    slow.append(subscriber)
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                slow.append(subscriber)
        for subscriber in slow:
            self.drop(subscriber)
        return message

    def subscribe(
        self, tenant: str, live_filter: LiveFilter, last_event_id: str | None = None
    ) -> Subscriber:
        """Return a new subscriber; with ``last_event_id``, its queue starts with what it missed
        (``reset`` is set instead when that cannot be told)."""
        entry = self._tenants.get(tenant)
        if entry is None:
            entry = self._tenants[tenant] = _Tenant(replay=deque(maxlen=self.replay_size))
        if not entry.subscribers and (entry.unwatched or entry.left_at is None):
            self.newly_watched.set()
        entry.unwatched = False
        entry.left_at = None
        subscriber = Subscriber(tenant, live_filter, asyncio.Queue(self.queue_size))
        if last_event_id is not None:
            missed = self._missed(entry, last_event_id)
            if missed is None:
                subscriber.reset = True
            else:
                missed = [m for m in missed if live_filter.matches(m)]
                for message in missed[-self.queue_size :]:
                    subscriber.queue.put_nowait(message)
                subscriber.reset = len(missed) > self.queue_size
        entry.subscribers.add(subscriber)
        self.counters["subscribed"] += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        entry = self._tenants.get(subscriber.tenant)
        if entry is not None and subscriber in entry.subscribers:
            entry.subscribers.discard(subscriber)
            if not entry.subscribers:
                entry.left_at = self._clock()

    def _missed(self, entry: _Tenant, last_event_id: str) -> list[LiveMessage] | None:
        epoch, _, serial_text = last_event_id.partition("-")
        if epoch != self.epoch or not serial_text.isdigit():
            return None
        serial = int(serial_text)
        if serial <= entry.gap_after:
            return None  # nobody watched for a while: what came then was not kept
        if entry.replay and entry.replay[0].serial > serial + 1:
            return None  # older than the buffer: some messages are gone
        return [m for m in entry.replay if m.serial > serial]

    def drop(self, subscriber: Subscriber) -> None:
        """Drop a client that cannot keep up: its stream ends and its connection is aborted."""
        if subscriber.dropped:
            return
        self.unsubscribe(subscriber)
        subscriber.dropped = True
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(None)
        self.counters["disconnected" if subscriber.closed else "dropped_slow_clients"] += 1
        if subscriber.on_drop is not None:
            subscriber.on_drop()

    def close_all(self) -> None:
        """End every stream (the app is shutting down)."""
        for entry in self._tenants.values():
            for subscriber in list(entry.subscribers):
                self.unsubscribe(subscriber)
                while not subscriber.queue.empty():
                    subscriber.queue.get_nowait()
                subscriber.queue.put_nowait(None)

    def restart(self) -> None:
        """End every stream and start a new epoch with empty replay buffers: what this hub
        missed cannot be replayed, so a client that resumes gets a ``reset``."""
        self.close_all()
        self._tenants.clear()
        self.epoch = str(time.time_ns() // 1_000_000)
        self.counters["restarted"] += 1
