"""Turn one MQTT message into what the store needs: rows to write, or why it cannot be stored.

This runs on the MQTT thread, so decoding overlaps the database work of the writer; it never
raises (anything unforeseen becomes a dead letter with a reason).

The clock rule (docs/security.md, docs/decisions.md): a batch whose sample or event times lie
within ``IngestRules`` (``accept_past`` before and ``accept_future`` after the cloud's clock)
is stored; one outside is *quarantined*: kept verbatim with its device and seq, acked, and
re-ingested by ``fleetlink cloud dead-letters replay`` (optionally shifting its times). A
status from the future moves presence to the cloud's receive time, never beyond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from math import isfinite
from typing import Any

from fleetlink.cloud.ingest.telemetry_wire import WireBatch, decode_telemetry
from fleetlink.shared.codec import CodecError, decode, decode_raw
from fleetlink.shared.messages import MAX_SEQ, EventBatch, Hello, Status, TelemetryBatch
from fleetlink.shared.signals import BY_ID
from fleetlink.shared.signing import payload_digest
from fleetlink.shared.topics import MAX_TOPIC_LENGTH, Kind, Topic, TopicError, parse

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Larger payloads are dead-lettered with only their first bytes kept.
MAX_PAYLOAD_BYTES = 256 * 1024
KEPT_OF_OVERSIZED = 4096


@dataclass(frozen=True, slots=True)
class IngestRules:
    """The time window a batch must fall in to be stored rather than quarantined."""

    accept_past: timedelta = timedelta(days=400)
    accept_future: timedelta = timedelta(hours=1)
    # Name of the user property in which the broker states the publisher's username; when
    # set, a message whose stated publisher is not the topic's device is refused.
    publisher_property: str = ""

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        return now - self.accept_past, now + self.accept_future


@dataclass(slots=True)
class Delivery:
    """What the broker handed over; ``mid`` and ``qos`` are needed to ack it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    # The publisher's identity as the broker states it (an MQTT v5 user property the broker
    # sets), or None where the broker does not say.
    publisher: str | None = None


@dataclass(slots=True)
class _FromDevice:
    """A decoded message from the device its topic names."""

    delivery: Delivery
    topic: Topic

    @property
    def device(self) -> str:
        return self.topic.device

    @property
    def digest(self) -> str:
        return payload_digest(self.delivery.payload)


# One signal's finite samples of a batch: (signal id, times, values), times and values alike
# in length.
SignalSamples = tuple[int, list[datetime], list[float]]


@dataclass(slots=True)
class TelemetryIn(_FromDevice):
    seq: int
    series: list[SignalSamples]
    latest: dict[int, tuple[datetime, float]]
    first_ts: datetime
    last_ts: datetime
    not_finite: int = 0
    # Worked out once by the classifier; the writer reads both more than once per batch.
    sample_count: int = 0
    days: frozenset[date] = frozenset()

    @property
    def rows(self) -> list[tuple[int, datetime, float]]:
        """Return the samples one by one: (signal id, time, value)."""
        return [
            (sid, ts, v)
            for sid, stamps, values in self.series
            for ts, v in zip(stamps, values, strict=True)
        ]


@dataclass(slots=True)
class EventsIn(_FromDevice):
    seq: int
    batch: EventBatch


@dataclass(slots=True)
class StatusIn(_FromDevice):
    status: Status
    # Presence time: the status's own, or the receive time if the status claims the future.
    seen_at: datetime = EPOCH
    skewed: bool = False


@dataclass(slots=True)
class HelloIn(_FromDevice):
    """A device asking for its high-water mark before it publishes."""

    hello: Hello


@dataclass(slots=True)
class Quarantined(_FromDevice):
    """A valid batch whose times lie outside the accepted window: kept, acked, replayable."""

    seq: int
    reason: str


@dataclass(slots=True)
class DeadLetter:
    """Unreadable or invalid input; kept verbatim. ``seq`` is set when it could still be read."""

    delivery: Delivery
    reason: str
    topic: Topic | None = None
    seq: int | None = None

    @property
    def digest(self) -> str:
        return payload_digest(self.delivery.payload)


@dataclass(slots=True)
class Refused:
    """Readable input the sender may not send (wrong device or tenant); not stored at all."""

    delivery: Delivery
    reason: str
    counter: str
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Inbound = TelemetryIn | EventsIn | StatusIn | HelloIn | Quarantined | DeadLetter | Refused


def _readable_seq(payload: bytes, device: str) -> int | None:
    try:
        body = decode_raw(payload)
    except CodecError:
        return None
    if not isinstance(body, dict) or body.get("device_id") != device:
        return None
    seq = body.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= MAX_SEQ:
        return seq
    return None


def _telemetry(
    delivery: Delivery,
    topic: Topic,
    batch: TelemetryBatch | WireBatch,
    now: datetime,
    rules: IngestRules,
) -> TelemetryIn | Quarantined | DeadLetter:
    base = EPOCH + timedelta(milliseconds=batch.base_time_ms)
    kept: list[SignalSamples] = []
    latest: dict[int, tuple[datetime, float]] = {}
    # Signals polled in one cycle share their offsets, so their times (and the newest of
    # them) are worked out once per distinct offsets list. Everything else is per series, with
    # C doing the loops: this runs on the MQTT thread for every message (D100).
    times_of: dict[tuple[int, ...], tuple[list[datetime], int]] = {}
    lowest, highest = 2**31, -1
    not_finite = 0
    for series in batch.series:
        sid = series.signal_id
        if sid not in BY_ID:
            return DeadLetter(delivery, f"unknown signal id {sid}", topic, batch.seq)
        offsets = tuple(series.offsets_ms)
        if not offsets:
            continue
        known = times_of.get(offsets)
        if known is None:
            lo, hi = min(offsets), max(offsets)
            lowest, highest = min(lowest, lo), max(highest, hi)
            stamps = [base + timedelta(0, 0, 0, off) for off in offsets]
            known = times_of[offsets] = (stamps, offsets.index(hi))
        stamps, newest = known
        values = series.values
        # NaN and infinities are not measurements; they are dropped and counted.
        if not all(map(isfinite, values)):
            finite = [i for i, v in enumerate(values) if isfinite(v)]
            not_finite += len(values) - len(finite)
            if not finite:
                continue
            newest = max(finite, key=offsets.__getitem__)
            newest_at, newest_value = stamps[newest], values[newest]
            stamps = [stamps[i] for i in finite]
            values = [values[i] for i in finite]
        else:
            newest_at, newest_value = stamps[newest], values[newest]
        kept.append((sid, stamps, values))
        if sid not in latest or latest[sid][0] < newest_at:
            latest[sid] = (newest_at, newest_value)
    if highest >= 0:
        first = base + timedelta(milliseconds=lowest)
        last = base + timedelta(milliseconds=highest)
        earliest, latest_ok = rules.window(now)
        if first < earliest or last > latest_ok:
            return Quarantined(
                delivery,
                topic,
                batch.seq,
                f"clock: sample times {first.isoformat()}..{last.isoformat()} outside "
                f"{earliest.isoformat()}..{latest_ok.isoformat()}",
            )
    else:
        first = last = base
    return TelemetryIn(
        delivery,
        topic,
        batch.seq,
        kept,
        latest,
        first,
        last,
        not_finite,
        sum(len(values) for _, _, values in kept),
        _days(first, last) if kept else frozenset(),
    )


def _days(first: datetime, last: datetime) -> frozenset[date]:
    """Return the UTC days from ``first`` to ``last``, both included."""
    start, end = first.date(), last.date()
    return frozenset(start + timedelta(days=n) for n in range((end - start).days + 1))


def _events(
    delivery: Delivery, topic: Topic, batch: EventBatch, now: datetime, rules: IngestRules
) -> EventsIn | Quarantined:
    earliest, latest_ok = rules.window(now)
    for event in batch.events:
        ts = EPOCH + timedelta(milliseconds=event.time_ms)
        if not earliest <= ts <= latest_ok:
            return Quarantined(
                delivery,
                topic,
                batch.seq,
                f"clock: event time {ts.isoformat()} outside "
                f"{earliest.isoformat()}..{latest_ok.isoformat()}",
            )
    return EventsIn(delivery, topic, batch.seq, batch)


def _status(
    delivery: Delivery, topic: Topic, status: Status, now: datetime, rules: IngestRules
) -> StatusIn:
    claimed = EPOCH + timedelta(milliseconds=status.time_ms)
    if claimed > rules.window(now)[1]:
        return StatusIn(delivery, topic, status, delivery.received_at, skewed=True)
    return StatusIn(delivery, topic, status, claimed)


_MODELS: dict[Kind, type[TelemetryBatch | EventBatch | Status | Hello]] = {
    Kind.TELEMETRY: TelemetryBatch,
    Kind.EVENTS: EventBatch,
    Kind.STATUS: Status,
    Kind.HELLO: Hello,
}


def classify(
    delivery: Delivery, now: datetime | None = None, rules: IngestRules | None = None
) -> Inbound:
    """Return what ``delivery`` is; never raises (bad input becomes a DeadLetter)."""
    try:
        return _classify(delivery, now or datetime.now(UTC), rules or IngestRules())
    except Exception as exc:  # a bug here must not kill paho's thread; the payload is kept
        return DeadLetter(delivery, f"the ingest could not classify it: {exc!r}"[:2000])


def _classify(delivery: Delivery, now: datetime, rules: IngestRules) -> Inbound:
    if len(delivery.topic) > MAX_TOPIC_LENGTH:
        delivery.topic = delivery.topic[:MAX_TOPIC_LENGTH]
        return DeadLetter(delivery, f"topic longer than {MAX_TOPIC_LENGTH} characters")
    if len(delivery.payload) > MAX_PAYLOAD_BYTES:
        size = len(delivery.payload)
        delivery.payload = delivery.payload[:KEPT_OF_OVERSIZED]
        return DeadLetter(
            delivery,
            f"payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES}; first {KEPT_OF_OVERSIZED} kept",
        )
    try:
        topic = parse(delivery.topic)
    except TopicError as exc:
        return DeadLetter(delivery, str(exc))
    if rules.publisher_property and delivery.publisher != topic.device:
        return Refused(
            delivery,
            f"published by {delivery.publisher!r}, not by the topic's device",
            "publisher_mismatch",
            topic.device,
        )
    model = _MODELS.get(topic.kind)
    if model is None:
        return DeadLetter(
            delivery, f"the cloud does not ingest {topic.kind.value!r} messages", topic
        )
    # Telemetry goes through the fast decoder first; what it does not accept, the model
    # decodes (and explains).
    fast = decode_telemetry(delivery.payload) if topic.kind is Kind.TELEMETRY else None
    try:
        message = fast if fast is not None else decode(delivery.payload, model)
    except CodecError as exc:
        seq = None
        if topic.kind in (Kind.TELEMETRY, Kind.EVENTS):
            seq = _readable_seq(delivery.payload, topic.device)
        return DeadLetter(delivery, str(exc)[:2000], topic, seq)
    if message.device_id != topic.device:
        return Refused(
            delivery,
            f"payload device_id {message.device_id!r} is not the topic's",
            "refused",
            topic.device,
        )
    if isinstance(message, TelemetryBatch | WireBatch):
        return _telemetry(delivery, topic, message, now, rules)
    if isinstance(message, EventBatch):
        return _events(delivery, topic, message, now, rules)
    if isinstance(message, Hello):
        return HelloIn(delivery, topic, message)
    return _status(delivery, topic, message, now, rules)
