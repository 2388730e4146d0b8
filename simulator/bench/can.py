"""``fleetlink bench can``: frames/s from an SLCAN pty to decoded samples in the agent's outbox.

A child process plays a saturated bus: the simulator's car schedule sped up to the target
rate (4,500 frames/s fills a 500 kbit/s bus) on an SLCAN adapter pty. This process runs the
real agent (its CAN source opens the pty with python-can's ``slcan`` interface, decodes with
cantools, downsamples, batches and stores in the SQLite outbox). The figures: frames
received per second, frames dropped (sent minus received, adapter overruns included), the
agent's CPU (percent of one core, and CPU seconds per 10,000 frames), and samples stored;
beside them, cantools' own ``decode_message`` loop over the same frames in the same run.
Medians over the repetitions.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import can

from fleetlink.edge.agent import Agent
from fleetlink.edge.config import parse_config
from fleetlink.edge.outbox import Outbox
from fleetlink.edge.sources.can_source import CanSource
from fleetlink.shared.codec import decode
from fleetlink.shared.messages import TelemetryBatch

_PROFILE = "fleetlink-sim-car"
_SETTLE_S = 3.0


def _play_bus(conn: Connection, frames_per_s: float, seconds: float) -> None:
    """Child process: an SLCAN pty carrying the car's schedule at ``frames_per_s``."""
    from fleetlink.simulator.can_schedule import CanSchedule
    from fleetlink.simulator.slcan import SlcanAdapter
    from fleetlink.simulator.vehicle import Vehicle

    vehicle = Vehicle(7)
    vehicle.set_ignition(True)
    vehicle.set_pedals(35.0, 0.0)
    schedule = CanSchedule("car", rate_factor=1.0)
    schedule = CanSchedule("car", rate_factor=frames_per_s / schedule.frames_per_s)
    adapter = SlcanAdapter()
    conn.send(adapter.start())
    while not adapter.is_open:
        time.sleep(0.01)
    time.sleep(0.2)
    sent: list[tuple[int, bytes]] = []
    conn.send("sending")
    started = next_slot = time.monotonic()
    state = vehicle.step(0.0)
    while time.monotonic() - started < seconds:
        now = time.monotonic()
        if int(now * 10) != int((now - 0.001) * 10):
            state = vehicle.step(0.1)
        frames = schedule.due(now, state)
        adapter.send(frames)
        sent.extend((f.arbitration_id, bytes(f.data)) for f in frames)
        next_slot += 0.001
        time.sleep(max(0.0, next_slot - time.monotonic()))
    conn.send((dict(adapter.counters), sent, time.monotonic() - started))
    conn.recv()
    adapter.stop()


@dataclass(frozen=True)
class RunFigures:
    sent: int
    sent_per_s: float
    received: int
    dropped: int
    received_per_s: float
    cpu_pct: float
    cpu_s_per_10k: float
    samples_stored: int
    baseline_frames_per_s: float
    baseline_cpu_s_per_10k: float


def _baseline(frames: list[tuple[int, bytes]]) -> tuple[float, float]:
    """cantools' own loop: ``decode_message`` for every frame its DBC knows."""
    from fleetlink.simulator.can_schedule import DBC_FILES, load_dbc

    database = load_dbc(DBC_FILES["car"])
    known = {m.frame_id for m in database.messages}
    cpu, wall = time.process_time(), time.perf_counter()
    for frame_id, data in frames:
        if frame_id in known:
            database.decode_message(frame_id, data)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return len(frames) / wall, cpu / len(frames) * 10_000


def _stock_slcan(interface: str, channel: str, bitrate: int) -> can.BusABC:
    """python-can's slcan interface as shipped (it reads the port one byte per call)."""
    return can.Bus(interface="slcan", channel=channel, bitrate=bitrate)


async def _one_run(
    frames_per_s: float, seconds: float, folder: Path, stock_reader: bool = False
) -> RunFigures:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    player = context.Process(target=_play_bus, args=(child, frames_per_s, seconds), daemon=True)
    player.start()
    port = await asyncio.to_thread(parent.recv)
    outbox_path = folder / f"bench-{time.monotonic_ns()}.sqlite3"
    config = parse_config(
        {
            "device": {"id": "bench-can", "tenant": "bench"},
            "mqtt": {"url": "mqtt://127.0.0.1:9"},
            "can": {"profile": _PROFILE, "interface": "slcan", "channel": port},
            "outbox": {"path": str(outbox_path)},
        }
    )
    assert config.can is not None
    agent = Agent(
        config, sources=[CanSource(config.can, connect=_stock_slcan)] if stock_reader else None
    )
    source = agent.sources[0]
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.to_thread(parent.recv)  # "sending"
        cpu0, wall0 = time.process_time(), time.perf_counter()
        counters, sent, sending_s = await asyncio.to_thread(parent.recv)
        deadline = time.monotonic() + _SETTLE_S
        while source.counters["frames"] < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        received = source.counters["frames"]
    finally:
        stop.set()
        await running
        parent.send("stop")
        player.join(5)
    with Outbox(outbox_path) as outbox:
        stored = sum(decode(b.payload, TelemetryBatch).sample_count for b in outbox.pending())
    base_fps, base_cpu = _baseline(sent)
    overruns = int(counters.get("overruns", 0))
    return RunFigures(
        sent=len(sent) + overruns,
        sent_per_s=(len(sent) + overruns) / sending_s,
        received=received,
        dropped=len(sent) + overruns - received,
        received_per_s=received / wall,
        cpu_pct=100.0 * cpu / wall,
        cpu_s_per_10k=cpu / max(received, 1) * 10_000,
        samples_stored=stored,
        baseline_frames_per_s=base_fps,
        baseline_cpu_s_per_10k=base_cpu,
    )


def report(frames_per_s: float = 4500.0, seconds: float = 10.0, repeat: int = 3) -> str:
    """Run the benchmark ``repeat`` times and return the median figures as text."""
    runs, stock = [], []
    with tempfile.TemporaryDirectory(prefix="fleetlink-bench-can-") as folder:
        for _ in range(repeat):
            runs.append(asyncio.run(_one_run(frames_per_s, seconds, Path(folder))))
            stock.append(asyncio.run(_one_run(frames_per_s, seconds, Path(folder), True)))

    def median(name: str, of: list[RunFigures] = runs) -> float:
        return statistics.median(getattr(r, name) for r in of)

    lines = [
        f"CAN: car schedule at {frames_per_s:,.0f} frames/s over an SLCAN pty, {seconds:g} s, "
        f"{repeat} runs (medians)",
        f"  bus: {median('sent_per_s'):,.0f} frames/s sent by the adapter",
        f"  agent (slcan -> cantools -> downsampling -> outbox): "
        f"{median('received_per_s'):,.0f} frames/s, dropped {int(median('dropped'))} of "
        f"{int(median('sent')):,}, CPU {median('cpu_pct'):.1f} % of one core, "
        f"{median('cpu_s_per_10k'):.3f} CPU s per 10,000 frames, "
        f"{int(median('samples_stored')):,} samples stored",
        f"  the same agent with python-can's slcan reader as shipped (byte by byte): "
        f"dropped {int(median('dropped', stock))}, CPU {median('cpu_pct', stock):.1f} % of one "
        f"core, {median('cpu_s_per_10k', stock):.3f} CPU s per 10,000 frames",
        f"  cantools decode_message loop over the same frames (those its DBC describes decoded, "
        f"the rest skipped): {median('baseline_frames_per_s'):,.0f} frames/s, "
        f"{median('baseline_cpu_s_per_10k'):.3f} CPU s per 10,000 frames",
        f"  runs: dropped {[r.dropped for r in runs]}, CPU % {[round(r.cpu_pct, 1) for r in runs]}",
    ]
    return "\n".join(lines)
