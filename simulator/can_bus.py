"""A simulated vehicle's CAN bus: its periodic traffic and its OBD-II ECU, on one transport.

The transport is an SLCAN adapter on a pseudo-terminal (what the agent opens with
python-can's ``slcan`` interface) or python-can's in-process ``virtual`` bus. Frames are
sent in 1 ms slots at their DBC cycle times; the engine ECU answers OBD requests (cars only:
a J1939 truck speaks J1939, not SAE J1979) on the same bus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Literal

import can

from fleetlink.simulator.can_obd import ObdResponder
from fleetlink.simulator.can_schedule import CanSchedule, VehicleKind
from fleetlink.simulator.slcan import SlcanAdapter
from fleetlink.simulator.vehicle import Vehicle

logger = logging.getLogger(__name__)

Transport = Literal["slcan", "virtual"]
_SLOT_S = 0.001


class SimulatedCanBus:
    """Puts ``vehicle``'s CAN traffic on an SLCAN pty or a python-can virtual bus.

    ``channel`` names the virtual bus (agents join it with ``interface="virtual"``);
    ``rate_factor`` scales every message's rate. ``counters`` holds ``frames`` (sent),
    ``obd_requests`` and ``obd_answers``. Frames are only sent while the ignition is on:
    a parked vehicle's bus is silent.
    """

    def __init__(
        self,
        vehicle: Vehicle,
        kind: VehicleKind,
        transport: Transport = "slcan",
        *,
        channel: str = "fleetlink-sim",
        rate_factor: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.vehicle = vehicle
        self.kind = kind
        self.transport: Transport = transport
        self.channel = channel
        self.schedule = CanSchedule(kind, rate_factor=rate_factor)
        self.counters: Counter[str] = Counter()
        self._responder = ObdResponder(vehicle) if kind == "car" else None
        self._answers: list[can.Message] = []
        self._answers_lock = threading.Lock()
        self.slcan: SlcanAdapter | None = None
        self._bus: can.BusABC | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> str | None:
        """Return the SLCAN pty path once started (None on a virtual bus)."""
        return self.slcan.port if self.slcan else None

    def start(self) -> str:
        """Start sending; return the SLCAN pty path or the virtual bus's channel name."""
        if self._thread is not None:
            raise RuntimeError("this CAN bus was already started")
        if self.transport == "slcan":
            self.slcan = SlcanAdapter(self._on_request)
            where = self.slcan.start()
        else:
            self._bus = can.Bus(interface="virtual", channel=self.channel)
            where = self.channel
        self._thread = threading.Thread(target=self._run, name=f"can-bus {where}", daemon=True)
        self._thread.start()
        return where

    def stop(self) -> None:
        """Stop sending and close the transport."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self.slcan is not None:
            self.slcan.stop()
        if self._bus is not None:
            self._bus.shutdown()

    def __enter__(self) -> SimulatedCanBus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _on_request(self, frame: can.Message) -> None:
        if self._responder is None:
            return
        self.counters["obd_requests"] += 1
        answers = self._responder.handle(frame)
        if answers:
            self.counters["obd_answers"] += 1
            with self._answers_lock:
                self._answers.extend(answers)

    def _send(self, frames: list[can.Message]) -> None:
        if self.slcan is not None:
            self.slcan.send(frames)
        elif self._bus is not None:
            for frame in frames:
                self._bus.send(frame)
        self.counters["frames"] += len(frames)

    def _run(self) -> None:
        next_slot = time.monotonic()
        while not self._stop.is_set():
            if self._bus is not None:
                while (request := self._bus.recv(timeout=0)) is not None:
                    self._on_request(request)
            with self._answers_lock:
                answers, self._answers = self._answers, []
            state = self.vehicle.snapshot()
            frames = self.schedule.due(time.monotonic(), state) if state.ignition_on else []
            if answers or frames:
                self._send(answers + frames)
            next_slot += _SLOT_S
            delay = next_slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.1:
                next_slot = time.monotonic()
