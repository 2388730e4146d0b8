"""The cloud processes' garbage-collector settings (D105), checked in a fresh interpreter so
the test process keeps its own."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from fleetlink.cloud import gc_tuning
before = gc.get_threshold()
gc_tuning.tune({threshold})
print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))
"""


def _probe(threshold: int) -> tuple[list[int], list[int], int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(threshold=threshold)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    before, after, frozen = json.loads(out)
    return before, after, frozen


def test_tuning_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    before, after, frozen = _probe(50_000)
    assert after == [50_000, before[1], before[2]]
    assert frozen > 1_000  # the modules and everything else alive at start


def test_zero_keeps_the_interpreter_defaults() -> None:
    before, after, frozen = _probe(0)
    assert after == before and frozen == 0
