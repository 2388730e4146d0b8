"""python-obd, imported once with its logging routed through ours and pint kept quiet.

python-obd adds its own stderr handler to the ``obd`` logger when it is imported, so every
line it logs would appear twice (once unformatted, which breaks ``--log-json``); and its unit
registry redefines ``percent``, ``%`` and ``ppm``, which makes pint log three "Redefining"
warnings at every start. Every Fleetlink module imports python-obd from here, so both are
handled before anyone else sees python-obd.
"""

from __future__ import annotations

import logging

_pint_log = logging.getLogger("pint.util")


class _NoRedefinitions(logging.Filter):
    """Drops pint's "Redefining 'percent'" records caused by python-obd's unit table."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Redefining ")


_filter = _NoRedefinitions()
_pint_log.addFilter(_filter)
try:
    import obd
    import obd.codes
    import obd.elm327
    import obd.protocols
    from obd.protocols.protocol import Frame, Message
finally:
    _pint_log.removeFilter(_filter)

OBD_LOGGER = "obd"


def route_python_obd_logging(level: int = logging.WARNING) -> None:
    """Make python-obd's records go through the root logger's handlers only, at ``level``.

    Idempotent; called on import and again by the commands after they configure logging.
    """
    logger = logging.getLogger(OBD_LOGGER)
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(level)


route_python_obd_logging()

__all__ = ["Frame", "Message", "obd", "route_python_obd_logging"]
