"""What is plugged in: serial ports, CAN interfaces, and what answers on a port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports

from fleetlink.edge.link.elm327 import Elm327Link
from fleetlink.edge.link.errors import LinkError
from fleetlink.edge.link.python_obd import route_python_obd_logging

# ARPHRD_CAN in /sys/class/net/<name>/type
_ARPHRD_CAN = "280"
_BY_ID = Path("/dev/serial/by-id")


def serial_ports() -> list[str]:
    """Return the serial ports present, stable ``/dev/serial/by-id`` names first."""
    stable = sorted(str(p) for p in _BY_ID.glob("*")) if _BY_ID.is_dir() else []
    targets = {str(Path(p).resolve()) for p in stable}
    others = sorted(p.device for p in list_ports.comports() if p.device not in targets)
    return stable + others


def can_interfaces(sys_net: Path = Path("/sys/class/net")) -> list[str]:
    """Return the names of the SocketCAN interfaces (can0, vcan0, …)."""
    found = []
    for entry in sorted(sys_net.glob("*")):
        try:
            if (entry / "type").read_text().strip() == _ARPHRD_CAN:
                found.append(entry.name)
        except OSError:
            continue
    return found


@dataclass(frozen=True, slots=True)
class AdapterProbe:
    port: str
    identity: str
    baudrate: int | None
    vehicle: bool
    protocol: str
    vin: str | None


def probe_adapter(port: str, baudrate: int | None = None, give_up_s: float = 9.0) -> AdapterProbe:
    """Open the adapter on ``port``, look for the vehicle and read its VIN.

    Raises:
        LinkError: nothing answers like an ELM327 on the port, or the port cannot be opened.
    """
    route_python_obd_logging()
    link = Elm327Link(port, baudrate=baudrate, timeout_s=1.0, stall_after_s=3.0)
    try:
        status = link.open(give_up_after_s=give_up_s)
        vehicle = status == "vehicle"
        return AdapterProbe(
            port,
            link.identity,
            link.baudrate,
            vehicle,
            link.protocol_name,
            link.read_vin() if vehicle else None,
        )
    finally:
        link.close()


__all__ = ["AdapterProbe", "LinkError", "can_interfaces", "probe_adapter", "serial_ports"]
