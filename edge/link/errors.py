"""What can go wrong on an OBD adapter link, one exception type per thing to do about it."""

from __future__ import annotations


class LinkError(RuntimeError):
    """Base class: the adapter link cannot do what was asked. The message says what, where,
    and what to check."""


class PortError(LinkError):
    """The port cannot be opened: no such path, not a serial device, no permission."""


class AdapterNotFoundError(LinkError):
    """The port opens but no ELM327 answers on it at any of the baud rates tried."""


class AdapterRefusedError(LinkError):
    """Something answers on the port but not as an ELM327 (an AT command was not accepted)."""


class LinkLostError(LinkError):
    """The port went away while in use (the adapter was unplugged, the pty closed)."""


class PortBusyError(PortError):
    """Another program holds the port (the agent, a terminal, ModemManager)."""


class PortPermissionError(PortError):
    """The user may not open the port; ``group`` is the group that may (often dialout)."""

    def __init__(self, message: str, group: str) -> None:
        super().__init__(message)
        self.group = group
