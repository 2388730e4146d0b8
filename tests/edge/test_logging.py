"""python-obd's records reach our handler once, and pint says nothing about python-obd's units."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

PROGRAM = """
import logging
from fleetlink.shared.logs import configure_logging
configure_logging(json_output=True)
import fleetlink.edge.diag, fleetlink.edge.sources.obd_source
from fleetlink.edge.logs import quiet_python_obd
quiet_python_obd()
import obd
logging.getLogger("obd.elm327").warning("from python-obd")
"""


def test_python_obd_logs_once_through_our_json_handler_and_pint_is_quiet() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert record["logger"] == "obd.elm327" and record["message"] == "from python-obd"
    assert "Redefining" not in result.stderr


def test_importing_the_edge_prints_no_pint_warning_even_without_logging_set_up() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import fleetlink.edge.diag"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""
