"""The edge installs with ``fleetlink[edge]`` alone: it never loads the cloud's stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
FORBIDDEN = ("aiohttp", "asyncpg", "psycopg", "cloud", "simulator", "elm")


def test_importing_the_edge_loads_no_cloud_or_simulator_module() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import edge\n"
        "names = [m.name for m in pkgutil.walk_packages(edge.__path__, 'edge.')]\n"
        "for name in names:\n"
        "    if not name.endswith('__main__'): importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    assert {"edge.agent", "edge.cli", "edge.uplink", "edge.sources.obd_source"} <= set(loaded)
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
