"""In-cab alerts: rules over the vehicle's signals, nudge then escalate, and the sinks that
tell the driver (see :mod:`fleetlink.edge.alerts.engine` for the contract with producers)."""
