"""An ELM327 adapter on a pseudo-terminal, answering for a simulated vehicle.

Any serial client (python-obd, pyserial, screen) opens ``emulator.port`` as it would
``/dev/ttyUSB0``. Fault injection lets resilience tests garble replies, go silent, stall and
then answer everything that queued up meanwhile, answer with another PID, or make the port
disappear, print the adapter's error messages (``?``, ``BUFFER FULL``, ``CAN ERROR``,
``STOPPED``) or cut a multi-frame reply short. ``clone=True`` makes it a clone that answers
``?`` to the timing commands (ATAT, ATST).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import select
import termios
import threading
import time
import tty
from collections import Counter, deque
from types import TracebackType

from fleetlink.simulator.elm327_interpreter import (
    CLONE_REJECTED_AT,
    ERROR_REPLIES,
    Elm327Interpreter,
    Quirks,
)
from fleetlink.simulator.obdb_ecus import ObdbEcus
from fleetlink.simulator.vehicle import Vehicle

logger = logging.getLogger(__name__)

_POLL_S = 0.05
_MAX_LINE = 256
_SERVED_MAX = 100_000
_SINGLE_MODE_01 = re.compile(rb"^\s*01\s*([0-9A-Fa-f]{2})\s*[0-9A-Fa-f]?\s*$")


class EmulatorStateError(RuntimeError):
    """Raised when the emulator is started twice or used after it stopped."""


class Elm327Emulator:
    """Serves the ELM327 protocol for ``vehicle`` on a pty from its own thread.

    Every OBD request (not AT commands) waits ``latency_s`` seconds before its reply, like the
    round trip to a real ECU, and then as long as the adapter listens for more ECUs (ATST,
    ATAT and the request's response count decide; see
    :meth:`~fleetlink.simulator.elm327_interpreter.Elm327Interpreter.wait_after_s`).
    ``seed`` drives the garbage bytes of ``set_garbled``. With ``baudrate`` set, the adapter
    hears only a client whose port is set to that rate (a UART at another rate receives
    noise), so baud-rate detection can be tested on a pty. ``obdb`` adds the ECUs of an OBDb
    signalset, answering its mode 22 commands (:mod:`fleetlink.simulator.obdb_ecus`).
    """

    def __init__(
        self,
        vehicle: Vehicle,
        latency_s: float = 0.03,
        *,
        seed: int = 0,
        baudrate: int | None = None,
        clone: bool = False,
        obdb: ObdbEcus | None = None,
    ) -> None:
        self.vehicle = vehicle
        self.latency_s = latency_s
        self.baudrate = baudrate
        self.port: str | None = None
        self._interpreter = Elm327Interpreter(vehicle, obdb)
        if clone:
            self._interpreter.quirks.rejected_at = CLONE_REJECTED_AT
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._requests_by_mode: Counter[int] = Counter()
        self._at_commands = 0
        self._garbled_remaining = 0
        self._wrong_pid_remaining = 0
        self._silent = False
        self._stalled_until = 0.0
        self._queued: deque[bytes] = deque()
        self._served: deque[tuple[str, bytes]] = deque(maxlen=_SERVED_MAX)
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

    def stall(self, seconds: float) -> None:
        """Answer nothing for ``seconds``, then answer every request that arrived meanwhile,
        in order and each after the latency, as a hung adapter that comes back does."""
        with self._lock:
            self._stalled_until = time.monotonic() + seconds

    @property
    def stalled(self) -> bool:
        """Return True while a :meth:`stall` lasts or its queued requests are being answered."""
        with self._lock:
            return time.monotonic() < self._stalled_until or bool(self._queued)

    def set_wrong_pid(self, n: int) -> None:
        """Answer the next ``n`` single-PID mode 01 requests for another PID (0C for 0D, 0D
        for any other), as an adapter whose replies slipped against its requests does."""
        with self._lock:
            self._wrong_pid_remaining = max(0, n)

    def inject_error_replies(self, *replies: str) -> None:
        """Answer the next OBD requests, one each and in order, with these adapter messages
        (``?``, ``BUFFER FULL``, ``CAN ERROR``, ``STOPPED``) or ``TRUNCATED`` (the reply's last
        frame is lost).

        Raises ValueError for a reply not in :data:`ERROR_REPLIES`.
        """
        unknown = [r for r in replies if r not in ERROR_REPLIES]
        if unknown:
            raise ValueError(f"not an injectable reply: {unknown} (known: {ERROR_REPLIES})")
        self._interpreter.quirks.faults.extend(replies)

    @property
    def timing(self) -> tuple[int, int]:
        """Return the adapter's response timing: (ATST value, ATAT mode)."""
        settings = self._interpreter.settings
        return settings.timeout_st, settings.adaptive

    @property
    def quirks(self) -> Quirks:
        """Return the ECU/adapter quirks in force; set their fields to switch one on."""
        return self._interpreter.quirks

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

    def served(self) -> list[tuple[str, bytes]]:
        """Return every OBD answer sent, oldest first: the request as the vehicle saw it
        (``"010C"``) and the ECU's payload (``41 0C 1A F8``), for checking what a client
        stored against what the vehicle produced (the last 100,000)."""
        with self._lock:
            return list(self._served)

    # ---------------------------------------------------------------- serving

    def _serve(self) -> None:
        master = self._master_fd
        assert master is not None
        buffer = bytearray()
        while not self._stop.is_set():
            if self._replay_one(master):
                continue
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
                with self._lock:
                    hold = time.monotonic() < self._stalled_until or bool(self._queued)
                    if hold:
                        self._queued.append(line)
                if not hold:
                    self._respond(master, line)
            if len(buffer) > _MAX_LINE:
                buffer.clear()

    def _replay_one(self, master: int) -> bool:
        """Answer the oldest request queued during a stall once it is over; True if one was."""
        with self._lock:
            if not self._queued or time.monotonic() < self._stalled_until:
                return False
            line = self._queued.popleft()
        self._respond(master, line)
        return True

    def _client_baudrate_matches(self) -> bool:
        if self.baudrate is None or self._slave_fd is None:
            return True
        speed = getattr(termios, f"B{self.baudrate}", None)
        try:
            return termios.tcgetattr(self._slave_fd)[5] == speed
        except termios.error:
            return False

    def _respond(self, master: int, line: bytes) -> None:
        if not self._client_baudrate_matches():
            return
        with self._lock:
            silent = self._silent
            wrong = _SINGLE_MODE_01.match(line) is not None and self._wrong_pid_remaining > 0
            if wrong:
                self._wrong_pid_remaining -= 1
        if silent:
            return
        if wrong:
            match = _SINGLE_MODE_01.match(line)
            assert match is not None
            line = b"010C" if match.group(1).upper() == b"0D" else b"010D"
        reply = self._interpreter.handle(line)
        if reply.obd_mode is not None:
            wait_s = self.latency_s + self._interpreter.wait_after_s(reply, self.latency_s)
            if wait_s > 0:
                time.sleep(wait_s)
        with self._lock:
            if reply.obd_mode is None:
                self._at_commands += 1
            else:
                self._requests_by_mode[reply.obd_mode] += 1
            if reply.payload is not None:
                request = "".join(line.decode("ascii", "replace").split()).upper()
                self._served.append((request, reply.payload))
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
