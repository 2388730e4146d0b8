"""The installed Fleetlink version: one source, ``version`` in pyproject.toml.

The agent reports it in its status message and the cloud in ``/healthz``.
"""

from __future__ import annotations

from importlib.metadata import version

VERSION: str = version("fleetlink")
