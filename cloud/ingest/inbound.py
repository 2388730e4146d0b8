"""Turn one MQTT message into what the store needs: rows to write, or why it cannot be stored.

This runs on the MQTT thread, so decoding overlaps the database work of the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fleetlink.shared.codec import CodecError, decode, decode_raw
from fleetlink.shared.messages import EventBatch, Status, TelemetryBatch
from fleetlink.shared.signals import BY_ID
from fleetlink.shared.topics import Kind, Topic, TopicError, parse

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OLDEST_ACCEPTED = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(slots=True)
class Delivery:
    """What the broker handed over; ``mid`` and ``qos`` are needed to ack it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime


@dataclass(slots=True)
class _FromDevice:
    """A decoded message from the device its topic names."""

    delivery: Delivery
    topic: Topic

    @property
    def device(self) -> str:
        return self.topic.device


@dataclass(slots=True)
class TelemetryIn(_FromDevice):
    seq: int
    rows: list[tuple[int, datetime, float]]
    latest: dict[int, tuple[datetime, float]]
    first_ts: datetime
    last_ts: datetime

    @property
    def days(self) -> set[date]:
        """Return the UTC days this batch's samples fall on."""
        first, last = self.first_ts.date(), self.last_ts.date()
        return {first + timedelta(days=n) for n in range((last - first).days + 1)}


@dataclass(slots=True)
class EventsIn(_FromDevice):
    seq: int
    batch: EventBatch


@dataclass(slots=True)
class StatusIn(_FromDevice):
    status: Status


@dataclass(slots=True)
class DeadLetter:
    """Unreadable or invalid input; kept verbatim. ``seq`` is set when it could still be read."""

    delivery: Delivery
    reason: str
    topic: Topic | None = None
    seq: int | None = None


@dataclass(slots=True)
class Refused:
    """Readable input the sender may not send (wrong device or tenant); not stored at all."""

    delivery: Delivery
    reason: str
    counter: str
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Inbound = TelemetryIn | EventsIn | StatusIn | DeadLetter | Refused


def _readable_seq(payload: bytes, device: str) -> int | None:
    try:
        body = decode_raw(payload)
    except CodecError:
        return None
    if not isinstance(body, dict) or body.get("device_id") != device:
        return None
    seq = body.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq < 2**63:
        return seq
    return None


def _telemetry(
    delivery: Delivery, topic: Topic, batch: TelemetryBatch, now: datetime
) -> TelemetryIn | DeadLetter:
    base = EPOCH + timedelta(milliseconds=batch.base_time_ms)
    rows: list[tuple[int, datetime, float]] = []
    latest: dict[int, tuple[datetime, float]] = {}
    # Signals polled in one cycle share offsets, so each timestamp is built once per batch.
    stamp_at: dict[int, datetime] = {}
    lowest, highest = 2**31, -1
    for series in batch.series:
        sid = series.signal_id
        if sid not in BY_ID:
            return DeadLetter(delivery, f"unknown signal id {sid}", topic, batch.seq)
        offsets = series.offsets_ms
        if not offsets:
            continue
        stamps = []
        for off in offsets:
            ts = stamp_at.get(off)
            if ts is None:
                ts = stamp_at[off] = base + timedelta(0, 0, 0, off)
            stamps.append(ts)
        rows.extend(zip([sid] * len(stamps), stamps, series.values, strict=True))
        newest = max(range(len(offsets)), key=offsets.__getitem__)
        if sid not in latest or latest[sid][0] < stamps[newest]:
            latest[sid] = (stamps[newest], series.values[newest])
        lowest = min(lowest, *offsets)
        highest = max(highest, offsets[newest])
    if rows:
        first, last = stamp_at[lowest], stamp_at[highest]
        if first < OLDEST_ACCEPTED or last > now + FUTURE_TOLERANCE:
            return DeadLetter(
                delivery,
                f"sample times {first.isoformat()}..{last.isoformat()} outside the accepted range",
                topic,
                batch.seq,
            )
    else:
        first = last = base
    return TelemetryIn(delivery, topic, batch.seq, rows, latest, first, last)


_MODELS: dict[Kind, type[TelemetryBatch | EventBatch | Status]] = {
    Kind.TELEMETRY: TelemetryBatch,
    Kind.EVENTS: EventBatch,
    Kind.STATUS: Status,
}


def classify(delivery: Delivery, now: datetime | None = None) -> Inbound:
    """Return what ``delivery`` is; never raises for bad input (that becomes a DeadLetter)."""
    try:
        topic = parse(delivery.topic)
    except TopicError as exc:
        return DeadLetter(delivery, str(exc))
    model = _MODELS.get(topic.kind)
    if model is None:
        return DeadLetter(
            delivery, f"the cloud does not ingest {topic.kind.value!r} messages", topic
        )
    try:
        message = decode(delivery.payload, model)
    except CodecError as exc:
        seq = None
        if topic.kind is not Kind.STATUS:
            seq = _readable_seq(delivery.payload, topic.device)
        return DeadLetter(delivery, str(exc)[:2000], topic, seq)
    if message.device_id != topic.device:
        return Refused(
            delivery,
            f"payload device_id {message.device_id!r} is not the topic's",
            "refused",
            topic.device,
        )
    if isinstance(message, TelemetryBatch):
        return _telemetry(delivery, topic, message, now or datetime.now(UTC))
    if isinstance(message, EventBatch):
        return EventsIn(delivery, topic, message.seq, message)
    return StatusIn(delivery, topic, message)
