"""The fleet load generator: ``fleetlink sim fleet`` (many virtual devices per process)."""
