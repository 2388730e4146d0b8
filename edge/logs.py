"""Logging specific to the agent: python-obd's records."""

from __future__ import annotations

import logging


def quiet_python_obd() -> None:
    """Route python-obd's records through the root handler only, warnings and up.

    The agent reports adapter state changes itself; python-obd (protocol parsers and
    decoders only, since the link is ours) has little left to say.
    """
    from fleetlink.edge.link.python_obd import route_python_obd_logging

    route_python_obd_logging(logging.WARNING)
