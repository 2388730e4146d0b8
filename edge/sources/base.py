"""The one interface every signal source implements, and the sample it produces.

A source owns its blocking reader (a thread), and hands :class:`Sample` objects to the
agent's core through a bounded, thread-safe queue, and the events it notices (the ignition
went off, the battery is low) through another. The core never knows which kind of source it
is draining, so adding a source never touches the core loop.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from fleetlink.shared.messages import CanStatus, Event, ObdbStatus, VehicleReport

AdapterState = Literal["connected", "stalled", "no_vehicle", "disconnected", "unknown"]

_PUT_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: a catalog signal id, when it was read (Unix ms), and its value."""

    signal_id: int
    time_ms: int
    value: float


SampleQueue = queue.Queue[Sample]
EventQueue = queue.Queue[Event]
Severity = Literal["info", "warning", "critical"]


@runtime_checkable
class CanActivity(Protocol):
    """What a CAN source tells others of the bus: the ids it saw, and how long ago the last
    frame came (None: no frame yet). The OBD source uses it to record the CAN ids in the
    vehicle's capability record and to tell a sleeping bus from a busy one."""

    def can_ids_seen(self) -> frozenset[int]:
        """Return every CAN id seen since the source started."""
        ...

    def seconds_since_can_frame(self) -> float | None:
        """Return the seconds since the last frame, None when none came yet."""
        ...


class Source(ABC):
    """A producer of samples running in its own thread.

    Subclasses implement :meth:`_run`, which loops until :attr:`stopping` is set and calls
    :meth:`emit` for each sample. ``counters`` holds what the source counts (replies lost,
    reconnects, samples dropped because the queue stayed full).
    """

    name = "source"

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._queue: SampleQueue | None = None
        self._events: EventQueue | None = None
        self.report_changes = 0
        self._thread: threading.Thread | None = None
        self._state: AdapterState = "unknown"

    @property
    def state(self) -> AdapterState:
        """Return the source's last known link state."""
        return self._state

    def can_status(self) -> CanStatus | None:
        """Return the CAN bus state and counters for the status message (None: not a bus)."""
        return None

    def obdb_status(self) -> ObdbStatus | None:
        """Return the counts of OBDb mode 22 polling for the status message (None: none)."""
        return None

    def vehicle_report(self) -> VehicleReport | None:
        """Return what this source knows of the vehicle for the status message (None: it
        reports nothing). ``report_changes`` grows whenever the report changes."""
        return None

    def start(self, samples: SampleQueue, events: EventQueue | None = None) -> None:
        """Start the reader thread, which puts samples on ``samples`` and events on
        ``events`` (dropped and counted when None); return at once.

        Raises:
            RuntimeError: the source is already running.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.name} source is already running")
        self._queue = samples
        self._events = events
        self.stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the reader thread to finish and wait up to ``timeout_s`` for it; return None."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def emit(self, sample: Sample) -> bool:
        """Hand ``sample`` to the core; return False (and count it) if the queue stayed full."""
        if self._queue is None:
            raise RuntimeError(f"{self.name} source is not started")
        try:
            self._queue.put(sample, timeout=_PUT_TIMEOUT_S)
        except queue.Full:
            self.counters["samples_dropped_queue_full"] += 1
            return False
        self.counters["samples"] += 1
        return True

    def emit_event(
        self, event_type: str, severity: Severity = "info", **data: str | int | float | None
    ) -> bool:
        """Hand an event to the core; return False (and count it) when nobody takes events
        or the queue is full."""
        event = Event(
            id=uuid.uuid4(),
            time_ms=int(time.time() * 1000),
            type=event_type,
            severity=severity,
            data=data,
        )
        if self._events is None:
            self.counters["events_dropped"] += 1
            return False
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.counters["events_dropped"] += 1
            return False
        self.counters["events"] += 1
        return True

    @abstractmethod
    def _run(self) -> None:
        """Read until :attr:`stopping` is set; runs in the source's own thread."""
