"""The one interface every signal source implements, and the sample it produces.

A source owns its blocking reader (a thread), and hands :class:`Sample` objects to the
agent's core through a bounded, thread-safe queue. The core never knows which kind of
source it is draining, so adding a source never touches the core loop.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from fleetlink.shared.messages import CanStatus

AdapterState = Literal["connected", "stalled", "no_vehicle", "disconnected", "unknown"]

_PUT_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: a catalog signal id, when it was read (Unix ms), and its value."""

    signal_id: int
    time_ms: int
    value: float


SampleQueue = queue.Queue[Sample]


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
        self._thread: threading.Thread | None = None
        self._state: AdapterState = "unknown"

    @property
    def state(self) -> AdapterState:
        """Return the source's last known link state."""
        return self._state

    def can_status(self) -> CanStatus | None:
        """Return the CAN bus state and counters for the status message (None: not a bus)."""
        return None

    def start(self, samples: SampleQueue) -> None:
        """Start the reader thread, which puts samples on ``samples``; return at once.

        Raises:
            RuntimeError: the source is already running.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.name} source is already running")
        self._queue = samples
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

    @abstractmethod
    def _run(self) -> None:
        """Read until :attr:`stopping` is set; runs in the source's own thread."""
