"""The edge installs with ``fleetlink[edge]`` alone: it never loads the cloud's stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
EDGE_MODULES = [
    "edge",
    "edge.agent",
    "edge.cli",
    "edge.config",
    "edge.outbox",
    "edge.batcher",
    "edge.uplink",
    "edge.logs",
    "edge.sources",
    "edge.sources.base",
    "edge.sources.obd_source",
]
FORBIDDEN = ("aiohttp", "asyncpg", "psycopg", "cloud", "simulator", "elm")


def test_importing_the_edge_loads_no_cloud_or_simulator_module() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {EDGE_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    assert "edge.uplink" in loaded
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
