"""``python -m fleetlink.edge …``: the agent's commands without the ``fleetlink`` wrapper."""

from fleetlink.edge.cli import app

app(prog_name="fleetlink edge")
