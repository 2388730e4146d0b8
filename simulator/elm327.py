"""An ELM327 adapter on a pseudo-terminal, answering for a simulated vehicle.

Any serial client (python-obd, pyserial, screen) opens ``emulator.port`` as it would
``/dev/ttyUSB0``. Fault injection lets resilience tests garble replies, go silent, or make
the port disappear.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import threading
import time
import tty
from collections import Counter
from types import TracebackType

from fleetlink.simulator.elm327_interpreter import Elm327Interpreter
from fleetlink.simulator.vehicle import Vehicle

logger = logging.getLogger(__name__)

_POLL_S = 0.05
_MAX_LINE = 256


class EmulatorStateError(RuntimeError):
    """Raised when the emulator is started twice or used after it stopped."""


class Elm327Emulator:
    """Serves the ELM327 protocol for ``vehicle`` on a pty from its own thread.

    Every OBD request (not AT commands) waits ``latency_s`` seconds before its reply, like the
    round trip to a real ECU. ``seed`` drives the garbage bytes of ``set_garbled``.
    """

    def __init__(self, vehicle: Vehicle, latency_s: float = 0.03, *, seed: int = 0) -> None:
        self.vehicle = vehicle
        self.latency_s = latency_s
        self.port: str | None = None
        self._interpreter = Elm327Interpreter(vehicle)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._requests_by_mode: Counter[int] = Counter()
        self._at_commands = 0
        self._garbled_remaining = 0
        self._silent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master_fd: int | None = None
        self._slave_fd: int | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Open the pty, start serving, and return the port path (also set as ``.port``).

        Raises EmulatorStateError when already started or stopped.
        """
        if self._thread is not None:
            raise EmulatorStateError("this emulator was already started; create a new one")
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master_fd, self._slave_fd = master, slave
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(
            target=self._serve, name=f"elm327-emulator {self.port}", daemon=True
        )
        self._thread.start()
        logger.info("ELM327 emulator serving on %s", self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving and close the pty: the port disappears and open clients see EOF/EIO."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        for fd in (self._master_fd, self._slave_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._master_fd is not None:
            logger.info("ELM327 emulator on %s stopped", self.port)
        self._master_fd = self._slave_fd = None

    def __enter__(self) -> Elm327Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------- fault injection

    def set_garbled(self, n: int) -> None:
        """Make the next ``n`` replies random bytes (still ended by the ``>`` prompt)."""
        with self._lock:
            self._garbled_remaining = max(0, n)

    def set_silent(self, silent: bool) -> None:
        """Stop (True) or resume (False) answering; requests that arrive meanwhile are dropped."""
        with self._lock:
            self._silent = silent

    # -------------------------------------------------------------- counters

    @property
    def requests_by_mode(self) -> dict[int, int]:
        """Return how many OBD requests were answered per mode, e.g. ``{1: 120, 3: 2}``."""
        with self._lock:
            return dict(self._requests_by_mode)

    @property
    def at_commands_served(self) -> int:
        """Return how many AT commands were answered."""
        with self._lock:
            return self._at_commands

    # ---------------------------------------------------------------- serving

    def _serve(self) -> None:
        master = self._master_fd
        assert master is not None
        buffer = bytearray()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], _POLL_S)
                if not ready:
                    continue
                chunk = os.read(master, 1024)
            except OSError:
                if self._stop.is_set():
                    return
                logger.exception("ELM327 emulator on %s failed reading", self.port)
                return
            buffer.extend(chunk.replace(b"\n", b""))
            while b"\r" in buffer:
                line, _, rest = bytes(buffer).partition(b"\r")
                buffer = bytearray(rest)
                self._respond(master, line)
            if len(buffer) > _MAX_LINE:
                buffer.clear()

    def _respond(self, master: int, line: bytes) -> None:
        with self._lock:
            silent = self._silent
        if silent:
            return
        reply = self._interpreter.handle(line)
        if reply.obd_mode is not None and self.latency_s > 0:
            time.sleep(self.latency_s)
        with self._lock:
            if reply.obd_mode is None:
                self._at_commands += 1
            else:
                self._requests_by_mode[reply.obd_mode] += 1
            data = reply.data
            if self._garbled_remaining > 0:
                self._garbled_remaining -= 1
                data = self._garbage()
        try:
            os.write(master, data)
        except OSError:
            if not self._stop.is_set():
                logger.exception("ELM327 emulator on %s failed writing", self.port)

    def _garbage(self) -> bytes:
        noise = bytes(self._rng.choice(range(0x80, 0x100)) for _ in range(self._rng.randint(6, 24)))
        return noise + b"\r\r>"
