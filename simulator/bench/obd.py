"""OBD values per second: the agent's multi-PID scheduling beside python-obd's plain loop.

Both read the same six mode 01 PIDs from the same simulated vehicle, whose ECU answers each
request after the same latency (30 ms by default), one after the other in the same run:

* **python-obd**: ``obd.OBD(port)`` (fast mode on, its default: it learns each command's
  frame count and appends it, so the adapter never waits out its timeout) and a loop of
  ``connection.query(cmd)``, one PID per round trip, as most fleet tools read a vehicle;
* **agent, one PID per request**: the agent's OBD source with the ``one_pid`` strategy;
* **agent, multi-PID**: the agent's OBD source as shipped (``multi_pid``): up to six PIDs
  per request, the per-PID scheduler, ELM timing tuned at connect;
* **agent, mode 22** (with ``signalsets``): the same source polling every mode 22 command of
  the OBDb signalsets (each asked far more often than it can be read), each on its own ECU
  (header and receive filter switched per group of commands), one DID per request as OBDb
  defines them; commands/s counts answered requests, values/s decoded signal values. Its runs
  start after one round of every command (each DID's first answer teaches the agent its frame
  count, as python-obd's fast mode learns one per PID before its runs).

Each reader runs for ``seconds`` after it is connected; values/s counts decoded values
handed over. Every figure is the median of ``repeat`` runs.
"""

from __future__ import annotations

import json
import queue
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetlink.edge.config import ObdSection, PollGroup
from fleetlink.edge.link.python_obd import obd
from fleetlink.edge.sources.base import Sample
from fleetlink.edge.sources.obd_source import ObdSource
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.obdb_ecus import ObdbEcus

COMMANDS = ("RPM", "SPEED", "COOLANT_TEMP", "ENGINE_LOAD", "THROTTLE_POS", "INTAKE_TEMP")
# Each PID asked for far more often than any reader can: the figure is the reader's ceiling.
_SATURATING_HZ = 100.0


@dataclass(frozen=True, slots=True)
class Figures:
    """values/s (and requests/s) of each run of one reader, and the medians."""

    reader: str
    values_per_s: list[float]
    requests_per_s: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values_per_s)

    @property
    def median_requests(self) -> float:
        return statistics.median(self.requests_per_s)


@dataclass(frozen=True, slots=True)
class Rates:
    """One run of one reader: values and requests per second."""

    values_per_s: float
    requests_per_s: float


def python_obd_loop(port: str, seconds: float) -> Rates:
    """Return the values/s python-obd's plain query loop reads from ``port``."""
    connection = obd.OBD(port, baudrate=38400, fast=True, timeout=1.0)
    try:
        if not connection.is_connected():
            raise RuntimeError(f"python-obd could not connect to {port}: {connection.status()}")
        commands = [obd.commands[name] for name in COMMANDS]
        for command in commands:  # let fast mode learn each command's frame count
            connection.query(command)
        values = requests = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            for command in commands:
                requests += 1
                if not connection.query(command).is_null():
                    values += 1
        elapsed = time.monotonic() - started
        return Rates(values / elapsed, requests / elapsed)
    finally:
        connection.close()


def agent_source(
    port: str,
    seconds: float,
    strategy: str,
    signalsets: Sequence[Path] = (),
    model_year: int | None = None,
) -> Rates:
    """Return the values/s the agent's OBD source hands over with ``strategy`` (with
    ``signalsets``: mode 22 values of every command, beside one slow mode 01 PID)."""
    settings = ObdSection(
        port=port,
        baudrate=38400,
        timeout_s=1.0,
        battery_rate_hz=0,
        strategy=strategy,
        poll=[
            PollGroup(commands=["SPEED"], rate_hz=0.1)
            if signalsets
            else PollGroup(commands=list(COMMANDS), rate_hz=_SATURATING_HZ)
        ],
        signalsets=list(signalsets),
        model_year=model_year,
        obdb_commands="all",
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
        if signalsets:
            # one round first: each DID's first request teaches the reader its frame count
            while source.counters["obdb_requests"] < source.mode_22_commands:
                if time.monotonic() > deadline + 60:
                    raise RuntimeError(f"the agent's mode 22 polling of {port} is stuck")
                time.sleep(0.05)
        while not samples.empty():
            samples.get_nowait()
        counters = source.counters
        before = (
            counters["obdb_ok"],
            counters["obdb_unpublished_values"],
            counters["ok_replies"],
        )
        started = time.monotonic()
        time.sleep(seconds)
        values = samples.qsize()
        elapsed = time.monotonic() - started
        if signalsets:
            unpublished = counters["obdb_unpublished_values"] - before[1]
            requests = counters["obdb_ok"] - before[0]
            values += unpublished
        else:
            requests = counters["ok_replies"] - before[2]
        return Rates(values / elapsed, requests / elapsed)
    finally:
        source.stop()


def _saturating(signalsets: Sequence[Path], folder: Path) -> list[Path]:
    """Copies of ``signalsets`` whose every command is due far more often than it can be read
    (the figure is then the polling's ceiling, not the signalset's frequencies)."""
    copies = []
    for index, path in enumerate(signalsets):
        data = json.loads(path.read_text(encoding="utf-8"))
        for command in data.get("commands", []):
            command["freq"] = 0.01
        copy = folder / f"{index}-{path.parent.parent.parent.name}.json"
        copy.write_text(json.dumps(data), encoding="utf-8")
        copies.append(copy)
    return copies


MODE_22 = "agent, mode 22 (OBDb)"


def measure(
    seconds: float = 5.0,
    repeat: int = 3,
    latency_ms: float = 30.0,
    signalsets: Sequence[Path] = (),
    model_year: int | None = None,
) -> tuple[list[Figures], dict[str, str]]:
    """Run every reader ``repeat`` times against one simulated vehicle (answering
    ``signalsets`` too when given); return the figures and what the adapter was set to at
    the end (its timing after the agent's tuning).

    Raises:
        SignalsetError: a signalset file that cannot be read.
    """
    with tempfile.TemporaryDirectory(prefix="fleetlink-bench-obd-") as folder:
        saturating = _saturating(signalsets, Path(folder)) if signalsets else []
        readers: dict[str, Callable[[str], Rates]] = {
            "python-obd, one PID per query": lambda port: python_obd_loop(port, seconds),
            "agent, one PID per request": lambda port: agent_source(port, seconds, "one_pid"),
            "agent, multi-PID scheduling": lambda port: agent_source(port, seconds, "multi_pid"),
        }
        if saturating:
            readers[MODE_22] = lambda port: agent_source(
                port, seconds, "multi_pid", saturating, model_year
            )
        runs: dict[str, list[Rates]] = {name: [] for name in readers}
        ecus = ObdbEcus.from_files(list(signalsets), model_year) if signalsets else None
        with SimulatedVehicle(seed=3, latency_s=latency_ms / 1000.0, obdb=ecus) as sim:
            assert sim.port is not None
            for _ in range(repeat):
                for name, reader in readers.items():
                    runs[name].append(reader(sim.port))
            timeout_st, adaptive = sim.elm327.timing
    figures = [
        Figures(n, [r.values_per_s for r in v], [r.requests_per_s for r in v])
        for n, v in runs.items()
    ]
    return figures, {"ATST": f"{timeout_st:02X}", "ATAT": str(adaptive)}


def report(
    seconds: float = 5.0,
    repeat: int = 3,
    latency_ms: float = 30.0,
    signalsets: Sequence[Path] = (),
    model_year: int | None = None,
) -> str:
    """Return the benchmark's report: each reader's median values/s and requests/s, and the
    ratios to python-obd.

    Raises:
        SignalsetError: a signalset file that cannot be read.
    """
    figures, adapter = measure(seconds, repeat, latency_ms, signalsets, model_year)
    baseline = figures[0].median
    lines = [
        f"OBD values/s: {len(COMMANDS)} mode 01 PIDs"
        + (f" and the mode 22 commands of {len(signalsets)} OBDb signalsets" if signalsets else "")
        + f", simulated ECU latency {latency_ms:g} ms per request, {seconds:g} s per run, "
        f"median of {repeat} runs",
    ]
    for figure in figures:
        runs = ", ".join(f"{v:.1f}" for v in figure.values_per_s)
        ratio = figure.median / baseline if baseline else float("nan")
        lines.append(
            f"  {figure.reader:<30} {figure.median:7.1f} values/s  "
            f"{figure.median_requests:6.1f} requests/s  "
            f"({ratio:4.2f}x python-obd)  runs: {runs}"
        )
    lines.append(
        f"  adapter timing after the agent's tuning: ATST{adapter['ATST']} ATAT{adapter['ATAT']}"
    )
    return "\n".join(lines)
