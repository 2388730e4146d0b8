"""Opening an adapter's port by any name, and finding the baud rate it talks at.

A udev link (``/dev/serial/by-id/usb-…``), a symlink made by an installer and the device
it points to (``/dev/ttyUSB0``, ``/dev/rfcomm0``, a pty) all open the same way: the path is
resolved, opened with pyserial, and the baud rate is the configured one or the first of the
usual ELM327 rates at which the adapter answers ``ATI`` with its prompt.
"""

from __future__ import annotations

import errno
import grp
import os
import stat
import time
from dataclasses import dataclass

import serial

from fleetlink.edge.link.errors import (
    AdapterNotFoundError,
    LinkLostError,
    PortBusyError,
    PortError,
    PortPermissionError,
)
from fleetlink.edge.link.replies import PROMPT

# 38400 and 9600 are the rates ELM327 chips boot at; clones and STN chips are often set to
# 115200; the datasheet lists the others.
ELM327_BAUDRATES = (38400, 9600, 115200, 57600, 19200, 230400)
_IDENTIFY = b"ATI"


@dataclass(frozen=True, slots=True)
class OpenedPort:
    """A port that answers: the pyserial object, the path asked for and the device it is."""

    serial: serial.Serial
    path: str
    device: str
    baudrate: int
    identity: str


def describe(path: str) -> str:
    """Return ``path`` with the device it resolves to when that differs, for messages."""
    device = os.path.realpath(path)
    return path if device == path else f"{path} (-> {device})"


def resolve(path: str) -> str:
    """Return the character device that ``path`` (a device, a symlink, a by-id link) names.

    Raises:
        PortError: nothing exists at ``path`` or it is not a character device.
    """
    device = os.path.realpath(path)
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        raise PortError(
            f"no such port: {describe(path)} does not exist; is the adapter plugged in?"
        ) from None
    except OSError as exc:
        raise PortError(f"cannot open {describe(path)}: {exc.strerror or exc}") from None
    if not stat.S_ISCHR(mode):
        raise PortError(f"{describe(path)} is not a serial device")
    return device


def read_reply(port: serial.Serial, deadline: float) -> bytes:
    """Return the bytes read up to and including the prompt, or what came before ``deadline``.

    Raises:
        LinkLostError: the port went away.
    """
    buffer = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(buffer)
        try:
            port.timeout = remaining
            chunk = port.read_until(PROMPT)
        except (serial.SerialException, OSError) as exc:
            raise LinkLostError(f"{port.port} went away while reading: {exc}") from None
        buffer.extend(chunk)
        if buffer.endswith(PROMPT) or not chunk:
            return bytes(buffer)


def write_line(port: serial.Serial, command: bytes) -> None:
    """Write ``command`` and the CR that ends it.

    Raises:
        LinkLostError: the port went away.
    """
    try:
        port.write(command + b"\r")
        port.flush()
    except (serial.SerialException, OSError) as exc:
        raise LinkLostError(f"{port.port} went away while writing: {exc}") from None


def _identify(port: serial.Serial, timeout_s: float) -> str | None:
    """Return the adapter's ATI text when it answers with a prompt in time, else None."""
    try:
        port.reset_input_buffer()
    except (serial.SerialException, OSError) as exc:
        raise LinkLostError(f"{port.port} went away: {exc}") from None
    write_line(port, _IDENTIFY)
    reply = read_reply(port, time.monotonic() + timeout_s)
    if not reply.endswith(PROMPT):
        return None
    text = reply[:-1].replace(b"\x00", b"").decode("ascii", "replace")
    lines = [ln.strip() for ln in text.replace("\n", "\r").split("\r") if ln.strip()]
    lines = [ln for ln in lines if ln.upper() != _IDENTIFY.decode()]
    if "\ufffd" in text or not lines:
        return None
    return lines[-1]


def _open_error(path: str, device: str, exc: Exception) -> PortError:
    """Return the error that says why ``device`` did not open and what to do about it."""
    if getattr(exc, "errno", None) == errno.EACCES:
        try:
            group = grp.getgrgid(os.stat(device).st_gid).gr_name
        except (KeyError, OSError):
            group = "dialout"
        return PortPermissionError(
            f"permission denied on {describe(path)}: join the group that owns it "
            f"(sudo usermod -aG {group} $USER, then log in again)",
            group,
        )
    if "lock" in str(exc).lower() or getattr(exc, "errno", None) == errno.EBUSY:
        return PortBusyError(
            f"{describe(path)} is busy: another program has it open (the agent? stop it with "
            "systemctl stop fleetlink-edge)"
        )
    return PortError(f"cannot open {describe(path)}: {exc}")


def open_port(
    path: str, baudrate: int | None, *, probe_timeout_s: float, give_up_at: float
) -> OpenedPort:
    """Open ``path`` and return it at the first baud rate where an ELM327 answers ``ATI``.

    With ``baudrate`` only that rate is tried, else :data:`ELM327_BAUDRATES` in order, each
    for up to ``probe_timeout_s``; nothing is tried after the monotonic time ``give_up_at``.

    Raises:
        PortError: the path does not exist, is not a serial device, or cannot be opened.
        AdapterNotFoundError: no answer at any rate tried; the message names the port, the
            command and the rates.
        LinkLostError: the port went away while probing.
    """
    device = resolve(path)
    rates = (baudrate,) if baudrate else ELM327_BAUDRATES
    try:
        port = serial.Serial(device, rates[0], timeout=probe_timeout_s, exclusive=True)
    except (serial.SerialException, OSError) as exc:
        raise _open_error(path, device, exc) from None
    tried: list[int] = []
    try:
        for rate in rates:
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                break
            if port.baudrate != rate:
                port.baudrate = rate
            tried.append(rate)
            identity = _identify(port, min(probe_timeout_s, remaining))
            if identity is not None:
                return OpenedPort(port, path, device, rate, identity)
    except BaseException:
        port.close()
        raise
    port.close()
    tried_text = ", ".join(str(r) for r in tried) or "none (no time left)"
    hint = "" if baudrate else "; if you know the adapter's rate, give it (--baudrate)"
    raise AdapterNotFoundError(
        f"no ELM327 answers on {describe(path)}: sent ATI at {tried_text} baud and got no "
        f"prompt within {probe_timeout_s:g} s at any rate; check the cable, the adapter's "
        f"power and the port{hint}"
    )
