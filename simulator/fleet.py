"""A complete simulated vehicle: physics, driver, a 10 Hz real-time clock and its ELM327 port."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from fleetlink.simulator.driver import Driver
from fleetlink.simulator.elm327 import Elm327Emulator
from fleetlink.simulator.nmea import NmeaEmitter
from fleetlink.simulator.obdb_ecus import ObdbEcus
from fleetlink.simulator.vehicle import Vehicle, VehicleState

logger = logging.getLogger(__name__)

TICK_S = 0.1
# After a stall (a suspended process, a slow CI machine) catch up at most this much at once.
_MAX_CATCH_UP_TICKS = 50


class SimulatedVehicle:
    """A vehicle driven by a ``style`` driver (0 calm - 1 aggressive) behind an ELM327 pty.

    The physics advance in fixed 0.1 s steps paced by the wall clock (``speed_factor`` > 1
    runs faster than real time), so a given ``seed`` always drives the same trip.
    ``baudrate``: the adapter answers only a client set to that rate (see Elm327Emulator).
    ``obdb``: the ECUs of an OBDb signalset answer its mode 22 commands too.
    Raises ValueError for a style outside [0, 1] or a speed_factor <= 0.
    """

    def __init__(
        self,
        seed: int = 0,
        style: float = 0.3,
        latency_s: float = 0.03,
        *,
        ignition_on: bool = True,
        speed_factor: float = 1.0,
        vehicle: Vehicle | None = None,
        baudrate: int | None = None,
        clone: bool = False,
        gps: bool = False,
        obdb: ObdbEcus | None = None,
    ) -> None:
        if speed_factor <= 0:
            raise ValueError(f"speed_factor must be > 0, got {speed_factor}")
        self.vehicle = vehicle or Vehicle(seed)
        self.driver = Driver(style, seed)
        self.elm327 = Elm327Emulator(
            self.vehicle, latency_s, seed=seed, baudrate=baudrate, clone=clone, obdb=obdb
        )
        # A GNSS receiver on a second pty writing the route's positions as NMEA, once a second.
        self.gps = NmeaEmitter(self.vehicle.snapshot) if gps else None
        self.speed_factor = speed_factor
        self._start_with_ignition = ignition_on
        self._stop = threading.Event()
        self._clock: threading.Thread | None = None

    @property
    def port(self) -> str | None:
        """Return the ELM327 pty path (like ``/dev/pts/7``) once started, else None."""
        return self.elm327.port

    @property
    def gps_port(self) -> str | None:
        """Return the GNSS receiver's pty path once started (None without ``gps``)."""
        return self.gps.port if self.gps is not None else None

    @property
    def vin(self) -> str:
        """Return the vehicle's VIN."""
        return self.vehicle.vin

    def snapshot(self) -> VehicleState:
        """Return the vehicle's current state."""
        return self.vehicle.snapshot()

    def set_ignition(self, on: bool) -> None:
        """Turn the ignition on or off (the driver coasts to a stop when it goes off)."""
        self.vehicle.set_ignition(on)

    def start(self) -> str:
        """Start the clock thread and the ELM327; return the pty path.

        Raises simulator.elm327.EmulatorStateError when started twice.
        """
        port = self.elm327.start()
        if self.gps is not None:
            self.gps.start()
        self.vehicle.set_ignition(self._start_with_ignition)
        self._clock = threading.Thread(
            target=self._run_clock, name=f"sim-clock {port}", daemon=True
        )
        self._clock.start()
        return port

    def stop(self) -> None:
        """Stop the clock and close the ELM327 port."""
        self._stop.set()
        if self._clock is not None:
            self._clock.join(timeout=2.0)
        if self.gps is not None:
            self.gps.stop()
        self.elm327.stop()

    def __enter__(self) -> SimulatedVehicle:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def tick(self) -> VehicleState:
        """Advance driver and physics by one 0.1 s step and return the new state."""
        pedals = self.driver.step(TICK_S, self.vehicle.snapshot())
        self.vehicle.set_pedals(pedals.accelerator_pct, pedals.brake_pct)
        return self.vehicle.step(TICK_S)

    def _run_clock(self) -> None:
        period_s = TICK_S / self.speed_factor
        next_tick = time.monotonic()
        while not self._stop.is_set():
            behind = int((time.monotonic() - next_tick) / period_s) + 1
            if behind > _MAX_CATCH_UP_TICKS:
                logger.warning("simulation clock fell %d ticks behind; skipping ahead", behind)
                next_tick = time.monotonic()
                behind = 1
            for _ in range(behind):
                self.tick()
                next_tick += period_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))
