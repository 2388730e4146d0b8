"""Logging specific to the agent: python-obd's own handler and chatter."""

from __future__ import annotations

import logging


def quiet_python_obd() -> None:
    """Route python-obd's records through the root handler, errors only.

    python-obd installs its own handler and logs every serial exchange; the agent
    reports adapter state changes itself.
    """
    obd_logger = logging.getLogger("obd")
    obd_logger.handlers.clear()
    obd_logger.propagate = True
    obd_logger.setLevel(logging.ERROR)
