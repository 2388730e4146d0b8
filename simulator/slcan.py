"""An SLCAN (Lawicel, CANable-style) adapter on a pseudo-terminal.

python-can's ``slcan`` interface, pyserial or a terminal open ``adapter.port`` as they would
``/dev/ttyACM0``. The adapter speaks the ASCII protocol: ``S0``-``S8`` set the bitrate,
``O``/``L`` open the channel (normal or listen-only), ``C`` closes it, ``V``/``N``/``F``
report version, serial number and status, ``t``/``T`` transmit a frame; each command is
answered with CR, or BEL when it is not understood. While the channel is open every bus
frame is written as ``tIIILDD…`` (11-bit) or ``TIIIIIIIILDD…`` (29-bit).

The bus never waits for a slow reader: frames that do not fit the adapter's buffer are
dropped and counted (``overruns``), as a real adapter's FIFO overflows. ``garble(n)``
corrupts the next ``n`` frame lines, for tests of a reader's error handling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import threading
import tty
from collections import Counter
from collections.abc import Callable

import can

logger = logging.getLogger(__name__)

_BITRATE_COMMANDS = {
    f"S{i}": rate
    for i, rate in enumerate(
        (10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 750_000, 1_000_000)
    )
}
_OK = b"\r"
_ERROR = b"\a"
_BUFFER_MAX = 256 * 1024
_MAX_COMMAND = 64


def frame_line(frame: can.Message) -> bytes:
    """Return ``frame`` as one SLCAN line (CR included)."""
    data = bytes(frame.data).hex().upper()
    if frame.is_extended_id:
        return f"T{frame.arbitration_id:08X}{len(frame.data)}{data}\r".encode("ascii")
    return f"t{frame.arbitration_id:03X}{len(frame.data)}{data}\r".encode("ascii")


def parse_frame(line: str) -> can.Message | None:
    """Return the frame a ``t``/``T`` transmit command carries, None if it is malformed."""
    try:
        if line[0] == "t":
            frame_id, dlc, rest, extended = int(line[1:4], 16), int(line[4]), line[5:], False
        elif line[0] == "T":
            frame_id, dlc, rest, extended = int(line[1:9], 16), int(line[9]), line[10:], True
        else:
            return None
        data = bytes.fromhex(rest)
    except (ValueError, IndexError):
        return None
    if len(data) != dlc or dlc > 8:
        return None
    return can.Message(arbitration_id=frame_id, is_extended_id=extended, data=data)


class SlcanAdapter:
    """Serves the SLCAN protocol on a pty; :meth:`send` puts bus frames on it.

    ``on_transmit`` receives every frame the client transmits (an OBD request).
    """

    def __init__(
        self, on_transmit: Callable[[can.Message], None] | None = None, *, seed: int = 0
    ) -> None:
        self.port: str | None = None
        self.bitrate: int | None = None
        self.is_open = False
        self.listen_only = False
        self.counters: Counter[str] = Counter()
        self._on_transmit = on_transmit
        self._rng = random.Random(seed)
        self._garble_remaining = 0
        self._out = bytearray()
        self._lock = threading.Lock()
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master_fd: int | None = None
        self._slave_fd: int | None = None

    def start(self) -> str:
        """Open the pty, start serving, and return its path (also ``.port``)."""
        if self._thread is not None:
            raise RuntimeError("this SLCAN adapter was already started")
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master_fd, self._slave_fd = master, slave
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(target=self._serve, name=f"slcan {self.port}", daemon=True)
        self._thread.start()
        logger.info("SLCAN adapter serving on %s", self.port)
        return self.port

    def stop(self) -> None:
        """Stop serving and close the pty (open clients see EOF/EIO)."""
        self._stop.set()
        os.write(self._wakeup_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._master_fd, self._slave_fd, self._wakeup_r, self._wakeup_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master_fd = self._slave_fd = None

    def garble(self, lines: int) -> None:
        """Corrupt the next ``lines`` frame lines (bad hex, cut short, or a wrong length)."""
        with self._lock:
            self._garble_remaining += lines

    def send(self, frames: list[can.Message]) -> None:
        """Write ``frames`` to the client if the channel is open (dropped and counted if the
        adapter's buffer is full)."""
        if not self.is_open or not frames:
            return
        chunk = bytearray()
        for frame in frames:
            line = frame_line(frame)
            if self._garble_remaining:
                line = self._garbled(line)
            chunk += line
        with self._lock:
            if len(self._out) + len(chunk) > _BUFFER_MAX:
                self.counters["overruns"] += len(frames)
                return
            self._out += chunk
            self.counters["frames_sent"] += len(frames)
        os.write(self._wakeup_w, b"x")

    def _garbled(self, line: bytes) -> bytes:
        with self._lock:
            self._garble_remaining -= 1
        self.counters["lines_garbled"] += 1
        kind = self._rng.randrange(3)
        if kind == 0:
            return line[:3] + b"ZZ" + line[5:]
        if kind == 1:
            return line[: len(line) // 2] + b"\r"
        return line[:4] + b"8" + line[5:] if line[:1] == b"t" else line[:9] + b"X" + line[10:]

    def _serve(self) -> None:
        master = self._master_fd
        assert master is not None
        pending = bytearray()
        while not self._stop.is_set():
            with self._lock:
                wants_write = bool(self._out)
            readable, writable, _ = select.select(
                [master, self._wakeup_r], [master] if wants_write else [], [], 0.5
            )
            if self._wakeup_r in readable:
                os.read(self._wakeup_r, 4096)
            if master in readable:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:
                    return
                pending += data
                *lines, rest = pending.split(b"\r")
                pending = bytearray(rest[-_MAX_COMMAND:])
                for line in lines:
                    self._reply(self._command(line.decode("ascii", "replace").strip("\n")))
            if master in writable:
                with self._lock:
                    out = bytes(self._out)
                try:
                    written = os.write(master, out)
                except BlockingIOError:
                    written = 0
                except OSError:
                    return
                with self._lock:
                    del self._out[:written]

    def _reply(self, reply: bytes) -> None:
        with self._lock:
            self._out += reply

    def _command(self, line: str) -> bytes:
        if not line:
            return _OK
        head = line[0]
        if line in _BITRATE_COMMANDS and not self.is_open:
            self.bitrate = _BITRATE_COMMANDS[line]
            return _OK
        if head == "s" and not self.is_open:
            return _OK
        if head in "OL" and len(line) == 1:
            self.is_open, self.listen_only = True, head == "L"
            return _OK
        if line == "C":
            self.is_open = False
            return _OK
        if line == "V":
            return b"V1013\r"
        if line == "N":
            return b"NFL01\r"
        if line == "F":
            return b"F00\r"
        if head == "Z" and len(line) == 2:
            return _OK
        if head in "tT" and self.is_open and not self.listen_only:
            frame = parse_frame(line)
            if frame is None:
                self.counters["bad_commands"] += 1
                return _ERROR
            self.counters["frames_received"] += 1
            if self._on_transmit is not None:
                self._on_transmit(frame)
            return b"z\r" if head == "t" else b"Z\r"
        self.counters["bad_commands"] += 1
        return _ERROR
