"""A simulated vehicle for tests and the demo: physics, a driver and an ELM327 on a pseudo-terminal.

Edge and cloud code never import this package; tests and ``fleetlink demo`` do.
"""
