"""``python -m edge …``: the agent's commands without the ``fleetlink`` wrapper."""

from edge.cli import app

app(prog_name="fleetlink edge")
