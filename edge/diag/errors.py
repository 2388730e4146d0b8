"""What ends a diag command early: one exception carrying its one-line reason and exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every ``fleetlink diag`` command (docs/guides/technician.md)."""

    OK = 0
    FAILED = 1  # the adapter, the vehicle or the ECU failed or refused
    USAGE = 2  # a wrong option or argument
    NO_ADAPTER = 3  # no adapter answers on any port tried
    PORT_UNAVAILABLE = 4  # the port is busy or permission is denied
    VEHICLE_SILENT = 5  # the adapter answers, the vehicle does not
    UNSUPPORTED = 6  # the vehicle does not support what was asked
    BAD_FILE = 7  # a log or DBC file that cannot be read
    UPLOAD_FAILED = 8  # the report was saved but the cloud did not take it


class DiagError(RuntimeError):
    """Raised when a command cannot do what was asked; ``str()`` is the one-line reason."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code
