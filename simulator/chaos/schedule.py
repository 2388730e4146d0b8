"""The fault schedule of a chaos run: a stream drawn from the seed alone.

Faults come in rounds; each round holds every kind once, in an order shuffled by the seed,
so a run of any length meets every kind about equally often. Each fault's duration, targets
and strength are drawn from the same generator, so one seed always gives one schedule.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

KINDS = (
    "cut",  # the link of some devices refuses connections
    "blackhole",  # the link of some devices forwards nothing (keepalives notice)
    "delay",  # every chunk on the links waits
    "throttle",  # the links carry a few kB/s
    "agent_kill9",  # an agent dies mid-batch
    "broker_restart",  # the broker stops and starts (with persistence)
    "cloud_kill9",  # the cloud dies, maybe between commit and ack
    "pg_restart",  # the database crashes (immediate stop) and starts, maybe mid-COPY
    "replay",  # old batches delivered again, duplicated and out of order
    "reinstall",  # a device starts again with an empty outbox
    "cap_fill",  # the small-cap device stays offline past its outbox cap
)


@dataclass(frozen=True, slots=True)
class Fault:
    number: int
    kind: str
    duration_s: float
    targets: tuple[int, ...]  # device indexes
    strength: float  # delay in s, throttle in bytes/s, replayed batches; else 0

    def describe(self) -> str:
        extra = {
            "delay": f" +{self.strength:.2f} s",
            "throttle": f" {self.strength / 1000:.1f} kB/s",
            "replay": f" {int(self.strength)} batches",
        }.get(self.kind, "")
        who = ",".join(f"d{t}" for t in self.targets) if self.targets else "-"
        return f"#{self.number:<3} {self.kind:<14} {self.duration_s:5.1f} s  {who}{extra}"


def faults(seed: int, devices: int, cap_device: int, quick: bool = False) -> Iterator[Fault]:
    """Yield the run's faults forever; ``quick`` draws shorter ones (the CI run)."""
    rng = random.Random(seed)
    scale = 0.5 if quick else 1.0
    number = 0
    others = [d for d in range(devices) if d != cap_device]
    while True:
        kinds = list(KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            number += 1
            some = tuple(sorted(rng.sample(range(devices), rng.randint(1, devices))))
            one = (rng.choice(others),)
            if kind == "cut":
                yield Fault(number, kind, rng.uniform(4, 15) * scale, some, 0)
            elif kind == "blackhole":
                yield Fault(number, kind, rng.uniform(12, 25) * scale, some, 0)
            elif kind == "delay":
                yield Fault(number, kind, rng.uniform(8, 20) * scale, some, rng.uniform(0.2, 1.5))
            elif kind == "throttle":
                yield Fault(number, kind, rng.uniform(8, 20) * scale, some, rng.uniform(500, 3000))
            elif kind in ("agent_kill9", "reinstall"):
                yield Fault(number, kind, rng.uniform(1, 4), one, 0)
            elif kind in ("cloud_kill9", "broker_restart", "pg_restart"):
                yield Fault(number, kind, rng.uniform(0.5, 3), (), 0)
            elif kind == "replay":
                yield Fault(number, kind, 0, (), rng.randint(10, 60))
            else:  # cap_fill: long enough for the small cap to overflow
                yield Fault(number, kind, rng.uniform(16, 22), (cap_device,), 0)
