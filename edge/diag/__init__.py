"""``fleetlink diag``: the technician's scan tool (see docs/guides/technician.md).

``cli`` holds the commands; ``session`` finds and opens the adapter; ``reads`` asks the
vehicle (codes, freeze frame, monitors, PIDs, live values); ``render`` draws the tables;
``report`` saves and uploads a session's report; ``can_bus`` sniffs, records and decodes CAN.
"""

from fleetlink.edge.diag.cli import app

__all__ = ["app"]
