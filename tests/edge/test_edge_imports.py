"""The edge installs with ``fleetlink[edge]`` alone: it never loads the cloud's stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
FORBIDDEN = (
    "aiohttp",
    "asyncpg",
    "psycopg",
    "amqtt",
    "pgserver",
    "elm",
    "fleetlink.cloud",
    "fleetlink.simulator",
)


def test_importing_the_edge_loads_no_cloud_or_simulator_module() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import fleetlink.edge as edge\n"
        "names = [m.name for m in pkgutil.walk_packages(edge.__path__, 'fleetlink.edge.')]\n"
        "for name in names:\n"
        "    if not name.endswith('__main__'): importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    edge = {"agent", "cli", "uplink", "sources.obd_source"}
    assert {f"fleetlink.edge.{name}" for name in edge} <= set(loaded)
    offenders = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert offenders == []
