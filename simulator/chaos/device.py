"""A chaos-run device: the real agent (outbox, uplink) fed by a ticking source.

Run as ``python -m fleetlink.simulator.chaos.device CONFIG SIGNALS RATE_HZ SKEW_MS``. Every
sample's value is unique to this process start (a random run id in the high bits, a counter in
the low bits), so the run counts duplicates as repeated (device, signal, value) rows and
nothing two starts produce can be mistaken for one another.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from pathlib import Path

from fleetlink.edge.agent import run_agent_with
from fleetlink.edge.config import load_config
from fleetlink.edge.sources.base import Sample, Source
from fleetlink.shared.signals import all_signals

_COUNTER_BITS = 32


class TickSource(Source):
    """The first ``signals`` catalog signals sampled at ``rate_hz``, stamped by a clock
    ``skew_ms`` off."""

    name = "tick"

    def __init__(self, signals: int, rate_hz: float, skew_ms: int) -> None:
        super().__init__()
        catalog = [s.id for s in all_signals()]
        if not 1 <= signals <= len(catalog):
            raise ValueError(f"signals must be 1..{len(catalog)} (the catalog's size)")
        self.signal_ids = catalog[:signals]
        self.period_s = 1.0 / rate_hz
        self.skew_ms = skew_ms
        self.run_id = secrets.randbelow(2**20) + 1
        self._state = "connected"

    def _run(self) -> None:
        counter = 0
        next_tick = time.monotonic()
        while not self.stopping.is_set():
            now_ms = int(time.time() * 1000) + self.skew_ms
            for signal_id in self.signal_ids:
                counter += 1
                value = float((self.run_id << _COUNTER_BITS) + counter)
                self.emit(Sample(signal_id, now_ms, value))
            next_tick += self.period_s
            self.stopping.wait(max(0.0, next_tick - time.monotonic()))


def main(argv: list[str]) -> None:
    config_path, signals, rate_hz, skew_ms = argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    config = load_config(Path(config_path))
    run_agent_with(config, [TickSource(int(signals), float(rate_hz), int(skew_ms))])


if __name__ == "__main__":
    main(sys.argv[1:])
