"""Groups samples into columnar telemetry batches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetlink.edge.sources.base import Sample
from fleetlink.shared.messages import Series, TelemetryBatch


@dataclass(frozen=True, slots=True)
class Draft:
    """The samples of one future batch; it becomes a message once the outbox gives it a seq."""

    samples: tuple[Sample, ...]

    def to_message(self, device_id: str, seq: int) -> TelemetryBatch:
        """Return the batch as a :class:`TelemetryBatch`: one series per signal, by signal id.

        Offsets are from the earliest sample's time; within a series samples keep arrival order.
        """
        base_ms = min(s.time_ms for s in self.samples)
        columns: dict[int, tuple[list[int], list[float]]] = {}
        for sample in self.samples:
            offsets, values = columns.setdefault(sample.signal_id, ([], []))
            offsets.append(sample.time_ms - base_ms)
            values.append(sample.value)
        series = [
            Series(signal_id=sid, offsets_ms=offsets, values=values)
            for sid, (offsets, values) in sorted(columns.items())
        ]
        return TelemetryBatch(device_id=device_id, seq=seq, base_time_ms=base_ms, series=series)


class Batcher:
    """Collects samples and says when a batch is due: at ``max_samples``, or when the batch is
    ``interval_s`` old while ``online`` and ``offline_interval_s`` old while not (nobody waits
    for data that cannot be sent, and larger batches take less disk and drain faster; D34).

    The clock is injectable (``monotonic``) so tests need not sleep.
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        max_samples: int = 500,
        monotonic: Callable[[], float] = time.monotonic,
        offline_interval_s: float | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.offline_interval_s = interval_s if offline_interval_s is None else offline_interval_s
        self.online = True
        self.max_samples = max_samples
        self._monotonic = monotonic
        self._samples: list[Sample] = []
        self._opened = monotonic()

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: Sample) -> bool:
        """Add one sample; return True when the batch is full and should be taken now."""
        if not self._samples:
            self._opened = self._monotonic()
        self._samples.append(sample)
        return len(self._samples) >= self.max_samples

    def due(self) -> bool:
        """Return True when the current batch is full, or non-empty and ``interval_s`` old."""
        if not self._samples:
            return False
        age = self.interval_s if self.online else self.offline_interval_s
        return len(self._samples) >= self.max_samples or self._monotonic() - self._opened >= age

    def take(self) -> Draft | None:
        """Return the collected samples as a :class:`Draft` and start afresh; None if empty."""
        if not self._samples:
            return None
        samples, self._samples = tuple(self._samples), []
        self._opened = self._monotonic()
        return Draft(samples)
