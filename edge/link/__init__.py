"""The OBD adapter link shared by the agent and ``fleetlink diag``.

``serial_port`` opens a port by any name and finds the adapter's baud rate; ``replies``
decides whether a reply answers the request it is read for; ``elm327`` is the session
(set-up, requests with deadlines, resynchronisation, stall and recovery); ``python_obd``
imports python-obd with its logging routed through ours.
"""
