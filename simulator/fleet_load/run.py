"""Run the fleet load over several processes and report rates, ack latency and CPU.

The parent splits the devices over ``processes`` children (each ``run_load`` in its own
interpreter), samples every component's CPU (``/proc``) when the children's measurement
window opens and when it closes, and merges the children's statistics.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.synchronize import Event as MpEvent
from queue import Empty
from typing import Any

from fleetlink.simulator.fleet_load.cpu import pids_named, pids_running, snapshot
from fleetlink.simulator.fleet_load.process import LoadPlan, LoadStats, run_load


@dataclass
class FleetReport:
    """The merged statistics of a run and each component's CPU (% of one core)."""

    vehicles: int
    period_s: float
    stats: LoadStats
    cpu_percent: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def messages_per_s(self) -> float:
        return self.stats.acked / self.stats.window_s if self.stats.window_s else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.stats.samples_acked / self.stats.window_s if self.stats.window_s else 0.0

    @property
    def offered_per_s(self) -> float:
        return self.vehicles / self.period_s

    @property
    def p50_ms(self) -> float:
        return self.stats.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.stats.percentile_ms(99)

    def sustained(self, p99_limit_ms: float = 1000.0) -> bool:
        """True when every device was answered, ≥ 95 % of the offered rate was acked, no
        batch waited longer than a resend, and the ack P99 stayed under the limit."""
        return (
            not self.errors
            and self.stats.not_ready == 0
            and self.messages_per_s >= 0.95 * self.offered_per_s
            and self.p99_ms < p99_limit_ms
        )

    def lines(self) -> list[str]:
        s = self.stats
        cpu = ", ".join(f"{k} {v:.0f} %" for k, v in self.cpu_percent.items())
        return [
            f"{self.vehicles:,} vehicles, one batch per {self.period_s:g} s "
            f"(offered {self.offered_per_s:,.0f} msg/s), window {s.window_s:.0f} s",
            f"acked {self.messages_per_s:,.0f} msg/s, {self.samples_per_s:,.0f} samples/s; "
            f"published {s.published:,}, resent {s.resent:,}, unacked at end "
            f"{s.unacked_at_end:,}, devices without hello answer {s.not_ready:,}",
            f"ack latency P50 {self.p50_ms:,.0f} ms, P99 {self.p99_ms:,.0f} ms",
            f"CPU (% of one core): {cpu}",
            *(f"error: {e}" for e in self.errors),
        ]


def _child(plan: LoadPlan, window: MpEvent, results: Any) -> None:
    async def main() -> LoadStats:
        opened = asyncio.Event()

        async def signal() -> None:
            await opened.wait()
            window.set()

        watcher = asyncio.create_task(signal())
        try:
            return await run_load(plan, opened)
        finally:
            watcher.cancel()

    try:
        results.put(("ok", asyncio.run(main())))
    except Exception as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def run_fleet(
    plan: LoadPlan,
    processes: int = 1,
    components: Callable[[], dict[str, list[int]]] | None = None,
) -> FleetReport:
    """Run ``plan``'s devices split over ``processes`` and return the merged report.

    ``components``: returns the pids per component to measure CPU of, asked when the
    measured window opens (so PostgreSQL backends started during the warm-up count); by
    default the ingest (command lines with ``cloud ingest`` or ``cloud serve``), mosquitto
    and PostgreSQL.
    """
    ctx = mp.get_context("spawn")
    window = ctx.Event()
    results = ctx.Queue()
    count = max(1, min(processes, len(plan.device_ids)))
    children = [
        ctx.Process(
            target=_child,
            args=(replace(plan, device_ids=plan.device_ids[i::count]), window, results),
            daemon=True,
        )
        for i in range(count)
    ]
    for child in children:
        child.start()
    report = FleetReport(len(plan.device_ids), plan.period_s, LoadStats())
    limit = plan.hello_timeout_s + plan.warmup_s + plan.duration_s + 120
    began = time.monotonic()
    while not window.wait(0.2):
        if time.monotonic() - began > limit or not any(c.is_alive() for c in children):
            break
    measured = (components or default_components)()
    measured["load generator"] = [c.pid for c in children if c.pid is not None]
    before, opened_at = snapshot(measured), time.monotonic()
    collected = 0
    after: dict[str, float] | None = None
    closed_at = opened_at
    while collected < count and time.monotonic() - began < limit:
        try:
            kind, value = results.get(timeout=0.5)
        except Empty:
            if not any(c.is_alive() for c in children) and results.empty():
                break
            continue
        if after is None:
            after, closed_at = snapshot(measured), time.monotonic()
        collected += 1
        if kind == "ok":
            report.stats.merge(value)
        else:
            report.errors.append(value)
    if collected < count:
        report.errors.append(f"{count - collected} load process(es) gave no result")
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
    if after is not None:
        elapsed = max(closed_at - opened_at, 1e-6)
        # A process that exited inside the window takes its CPU time with it: never below 0.
        report.cpu_percent = {k: max(0.0, after[k] - before[k]) / elapsed * 100 for k in measured}
    return report


def default_components() -> dict[str, list[int]]:
    """Return the pids of the ingest, mosquitto and PostgreSQL found on this machine."""
    return {
        "ingest": pids_running("fleetlink", "cloud", "ingest")
        + pids_running("fleetlink", "cloud", "serve"),
        "broker": pids_named("mosquitto"),
        "postgres": pids_named("postgres"),
    }
