"""Gaps: samples a device had to give up, described as an event that travels like any other.

A gap says which time range and signals are missing, how many samples and batches, and why
(``outbox_cap``: the outbox reached its byte cap; ``memory_overflow``: the outbox refused
writes for so long that the batches waiting in memory overflowed). It is an ``Event`` of type
``gap`` on the acked event path, so it is stored exactly once and listed per vehicle by the API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from fleetlink.shared.codec import CodecError, decode, encode
from fleetlink.shared.messages import GAP_EVENT, Event, EventBatch, TelemetryBatch

GapReason = str  # "outbox_cap" | "memory_overflow"
_MAX_SIGNALS_TEXT = 256


def signal_ranges(signals: Iterable[int]) -> tuple[str, bool]:
    """Return ``signals`` as compact ranges ("5,10-14") cut to fit an event field, and
    whether it was cut."""
    ids = sorted(set(signals))
    parts: list[str] = []
    start = prev = None
    for sid in [*ids, None]:
        if sid is not None and prev is not None and sid == prev + 1:
            prev = sid
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = sid
    text = ",".join(parts)
    if len(text) <= _MAX_SIGNALS_TEXT:
        return text, False
    return text[:_MAX_SIGNALS_TEXT].rsplit(",", 1)[0], True


@dataclass(slots=True)
class Gap:
    """What was given up: a time range, the signals, and counts, for one reason."""

    reason: GapReason
    device_id: str = ""
    start_ms: int | None = None
    end_ms: int | None = None
    signals: set[int] = field(default_factory=set)
    samples: int = 0
    batches: int = 0
    events: int = 0

    def __bool__(self) -> bool:
        return self.batches > 0

    def add_times(self, times: Iterable[int]) -> None:
        for t in times:
            self.start_ms = t if self.start_ms is None else min(self.start_ms, t)
            self.end_ms = t if self.end_ms is None else max(self.end_ms, t)

    def add_telemetry(self, batch: TelemetryBatch) -> None:
        """Count one telemetry batch as given up."""
        self.batches += 1
        self.device_id = self.device_id or batch.device_id
        for series in batch.series:
            self.signals.add(series.signal_id)
            self.samples += len(series.values)
            self.add_times(batch.base_time_ms + o for o in series.offsets_ms)

    def add_events(self, batch: EventBatch) -> None:
        """Count one event batch as given up (a gap about gaps keeps their range)."""
        self.batches += 1
        self.device_id = self.device_id or batch.device_id
        self.events += len(batch.events)
        self.add_times(e.time_ms for e in batch.events)

    def add_payload(self, kind: str, payload: bytes) -> None:
        """Count a stored batch as given up; one that does not decode still counts a batch."""
        try:
            if kind == "events":
                self.add_events(decode(payload, EventBatch))
            else:
                self.add_telemetry(decode(payload, TelemetryBatch))
        except CodecError:
            self.batches += 1

    def merge(self, other: Gap) -> None:
        """Add ``other`` (of the same reason) to this gap."""
        self.device_id = self.device_id or other.device_id
        self.add_times(t for t in (other.start_ms, other.end_ms) if t is not None)
        self.signals |= other.signals
        self.samples += other.samples
        self.batches += other.batches
        self.events += other.events

    def to_batch(self, seq: int) -> bytes:
        """Return the gap as an encoded one-event ``EventBatch`` under ``seq``."""
        return encode(EventBatch(device_id=self.device_id, seq=seq, events=[self.to_event()]))

    def to_event(self) -> Event:
        """Return the gap as an ``Event`` of type ``gap``."""
        now = int(time.time() * 1000)
        start = self.start_ms if self.start_ms is not None else now
        signals, cut = signal_ranges(self.signals)
        return Event(
            id=uuid.uuid4(),
            time_ms=start,
            type=GAP_EVENT,
            severity="warning",
            data={
                "reason": self.reason,
                "start_ms": start,
                "end_ms": self.end_ms if self.end_ms is not None else start,
                "signals": signals,
                "signals_cut": cut,
                "samples": self.samples,
                "batches": self.batches,
                "events": self.events,
            },
        )
