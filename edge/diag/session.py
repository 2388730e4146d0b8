"""Finding the adapter and opening a session with the vehicle, or saying in one line why not.

Without ``--port`` every candidate port is tried in turn (the serial ports the system lists,
``/dev/serial/by-id/*``, ``/dev/ttyUSB*``, ``/dev/ttyACM*``, ``/dev/rfcomm*``; the globs can be
replaced with ``FLEETLINK_DIAG_PORTS``, colon-separated) at every usual baud rate, and each
attempt is kept so that "no adapter found" can list them.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from serial.tools import list_ports

from fleetlink.edge.diag.errors import DiagError, ExitCode
from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.errors import (
    AdapterNotFoundError,
    LinkError,
    PortBusyError,
    PortError,
    PortPermissionError,
)
from fleetlink.edge.link.python_obd import route_python_obd_logging
from fleetlink.edge.link.serial_port import ELM327_BAUDRATES

# Everything diag does on one port that does not answer ends within this time.
GIVE_UP_S = 9.0
REQUEST_TIMEOUT_S = 1.0
PORT_GLOBS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/rfcomm*")
PORTS_ENV = "FLEETLINK_DIAG_PORTS"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One port tried: at which baud rates, and what happened (``adapter`` when one answered)."""

    port: str
    baudrates: list[int]
    result: str

    def as_json(self) -> dict[str, object]:
        return {"port": self.port, "baudrates": self.baudrates, "result": self.result}


@dataclass(slots=True)
class Session:
    """An open link to a vehicle, and how it was found."""

    link: Elm327Link
    port: str
    tried: list[Attempt] = field(default_factory=list)


def candidate_ports() -> list[str]:
    """Return the ports to try, each device once (a by-id link before its ttyUSB target)."""
    env = os.environ.get(PORTS_ENV)
    patterns = [p for p in env.split(":") if p] if env is not None else list(PORT_GLOBS)
    found: list[str] = []
    for pattern in patterns:
        found += sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    if env is None:
        found += [p.device for p in list_ports.comports()]
    unique: dict[str, str] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def _open(port: str, baudrate: int | None) -> Elm327Link:
    link = Elm327Link(port, baudrate=baudrate, timeout_s=REQUEST_TIMEOUT_S, stall_after_s=3.0)
    try:
        status = link.open(give_up_after_s=GIVE_UP_S)
    except PortPermissionError as exc:
        raise DiagError(str(exc), ExitCode.PORT_UNAVAILABLE) from None
    except PortBusyError as exc:
        raise DiagError(str(exc), ExitCode.PORT_UNAVAILABLE) from None
    except (PortError, AdapterNotFoundError) as exc:
        raise DiagError(str(exc), ExitCode.NO_ADAPTER) from None
    except LinkError as exc:
        raise DiagError(str(exc)) from None
    if status != "vehicle":
        link.close()
        battery = f", battery {link.battery_v:g} V" if link.battery_v is not None else ""
        raise DiagError(
            f"the adapter on {port} ({link.identity}{battery}) answers but the vehicle does "
            "not: is the ignition on (key in position II or the engine running)?",
            ExitCode.VEHICLE_SILENT,
        )
    return link


def _discover(baudrate: int | None) -> Session:
    rates = [baudrate] if baudrate else list(ELM327_BAUDRATES)
    tried: list[Attempt] = []
    for port in candidate_ports():
        try:
            link = _open(port, baudrate)
        except DiagError as exc:
            if exc.code == ExitCode.VEHICLE_SILENT:
                raise
            if exc.code == ExitCode.PORT_UNAVAILABLE:
                reason = "busy" if "busy" in str(exc) else "permission denied"
            else:
                reason = "no ELM327 answers"
            tried.append(Attempt(port, rates, reason))
            continue
        tried.append(Attempt(port, rates, "adapter"))
        return Session(link, port, tried)
    listing = "; ".join(f"{a.port} ({a.result})" for a in tried) or "no serial ports exist"
    raise DiagError(
        f"no adapter found: tried {listing} at {', '.join(map(str, rates))} baud; plug the "
        "adapter in or give its port with --port",
        ExitCode.NO_ADAPTER,
    )


@contextmanager
def connect(port: str | None, baudrate: int | None) -> Iterator[Session]:
    """Yield a session with the vehicle on ``port`` (found when None); close it afterwards.

    Raises:
        DiagError: no adapter, port busy or forbidden, vehicle silent, or the adapter stopped
            answering during the command (its code says which).
    """
    route_python_obd_logging()
    if port is None:
        session = _discover(baudrate)
    else:
        rates = [baudrate] if baudrate else list(ELM327_BAUDRATES)
        session = Session(_open(port, baudrate), port, [Attempt(port, rates, "adapter")])
    link = session.link
    try:
        yield session
        if link.stalled:
            raise DiagError(f"the adapter on {session.port} stopped answering; output incomplete")
    except LinkError as exc:
        raise DiagError(str(exc)) from None
    finally:
        link.close()
