"""OBD values per second: the agent's multi-PID scheduling beside python-obd's plain loop.

Both read the same six mode 01 PIDs from the same simulated vehicle, whose ECU answers each
request after the same latency (30 ms by default), one after the other in the same run:

* **python-obd**: ``obd.OBD(port)`` (fast mode on, its default: it learns each command's
  frame count and appends it, so the adapter never waits out its timeout) and a loop of
  ``connection.query(cmd)``, one PID per round trip, as most fleet tools read a vehicle;
* **agent, one PID per request**: the agent's OBD source with the ``one_pid`` strategy;
* **agent, multi-PID**: the agent's OBD source as shipped (``multi_pid``): up to six PIDs
  per request, the per-PID scheduler, ELM timing tuned at connect.

Each reader runs for ``seconds`` after it is connected; values/s counts decoded values
handed over. Every figure is the median of ``repeat`` runs.
"""

from __future__ import annotations

import queue
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.link.python_obd import obd
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import ObdSource
from fleetlink.simulator.fleet import SimulatedVehicle

COMMANDS = ("RPM", "SPEED", "COOLANT_TEMP", "ENGINE_LOAD", "THROTTLE_POS", "INTAKE_TEMP")
# Each PID asked for far more often than any reader can: the figure is the reader's ceiling.
_SATURATING_HZ = 100.0


@dataclass(frozen=True, slots=True)
class Figures:
    """values/s of each run of one reader, and the median."""

    reader: str
    values_per_s: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values_per_s)


def python_obd_loop(port: str, seconds: float) -> float:
    """Return the values/s python-obd's plain query loop reads from ``port``."""
    connection = obd.OBD(port, baudrate=38400, fast=True, timeout=1.0)
    try:
        if not connection.is_connected():
            raise RuntimeError(f"python-obd could not connect to {port}: {connection.status()}")
        commands = [obd.commands[name] for name in COMMANDS]
        for command in commands:  # let fast mode learn each command's frame count
            connection.query(command)
        values = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            for command in commands:
                if not connection.query(command).is_null():
                    values += 1
        return values / (time.monotonic() - started)
    finally:
        connection.close()


def agent_source(port: str, seconds: float, strategy: str) -> float:
    """Return the values/s the agent's OBD source hands over with ``strategy``."""
    settings = ObdSection(
        port=port,
        baudrate=38400,
        timeout_s=1.0,
        battery_rate_hz=0,
        strategy=strategy,
        poll=[PollGroup(commands=list(COMMANDS), rate_hz=_SATURATING_HZ)],
    )
    source = ObdSource(settings)
    samples: queue.Queue[Sample] = queue.Queue()
    source.start(samples)
    try:
        deadline = time.monotonic() + 30
        while source.power != "awake" or samples.empty():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent's OBD source never read {port}")
            time.sleep(0.01)
        while not samples.empty():
            samples.get_nowait()
        started = time.monotonic()
        time.sleep(seconds)
        values = samples.qsize()
        return values / (time.monotonic() - started)
    finally:
        source.stop()


def measure(
    seconds: float = 5.0, repeat: int = 3, latency_ms: float = 30.0
) -> tuple[list[Figures], dict[str, str]]:
    """Run every reader ``repeat`` times against one simulated vehicle; return the figures
    and what the adapter was set to at the end (its timing after the agent's tuning)."""
    readers: dict[str, Callable[[str], float]] = {
        "python-obd, one PID per query": lambda port: python_obd_loop(port, seconds),
        "agent, one PID per request": lambda port: agent_source(port, seconds, "one_pid"),
        "agent, multi-PID scheduling": lambda port: agent_source(port, seconds, "multi_pid"),
    }
    runs: dict[str, list[float]] = {name: [] for name in readers}
    with SimulatedVehicle(seed=3, latency_s=latency_ms / 1000.0) as sim:
        assert sim.port is not None
        for _ in range(repeat):
            for name, reader in readers.items():
                runs[name].append(reader(sim.port))
        timeout_st, adaptive = sim.elm327.timing
    return [Figures(n, v) for n, v in runs.items()], {
        "ATST": f"{timeout_st:02X}",
        "ATAT": str(adaptive),
    }


def report(seconds: float = 5.0, repeat: int = 3, latency_ms: float = 30.0) -> str:
    """Return the benchmark's report: each reader's median values/s and the ratios."""
    figures, adapter = measure(seconds, repeat, latency_ms)
    baseline = figures[0].median
    lines = [
        f"OBD values/s: {len(COMMANDS)} mode 01 PIDs, simulated ECU latency {latency_ms:g} ms "
        f"per request, {seconds:g} s per run, median of {repeat} runs",
    ]
    for figure in figures:
        runs = ", ".join(f"{v:.1f}" for v in figure.values_per_s)
        ratio = figure.median / baseline if baseline else float("nan")
        lines.append(
            f"  {figure.reader:<30} {figure.median:7.1f} values/s  "
            f"({ratio:4.2f}x python-obd)  runs: {runs}"
        )
    lines.append(
        f"  adapter timing after the agent's tuning: ATST{adapter['ATST']} ATAT{adapter['ATAT']}"
    )
    return "\n".join(lines)
