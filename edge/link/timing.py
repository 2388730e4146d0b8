"""ELM327 response timing: ask for faster timing, and keep what the adapter accepts.

After each reply an ELM327 listens for more ECUs until its timeout (``ATST``, 4.096 ms
steps, about 200 ms after a reset) unless adaptive timing (``ATAT1``, ``ATAT2``) has learned
how fast the ECUs answer. A response count appended to a request (``010C1``) ends the wait
at once; it is used when one ECU answers (see :mod:`.multi_pid`). Clones often answer ``?``
to ``ATAT2`` or ``ATST``: each setting is probed, the next weaker one is tried, and the
adapter keeps its own timing for what it refuses.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from fleetlink.edge.link.elm327 import Elm327Link

log = logging.getLogger(__name__)

ST_STEP_MS = 4.096
_MIN_TIMEOUT_MS = 32.0
_MAX_TIMEOUT_MS = 200.0
_MEASURE_REQUESTS = 3


@dataclass(frozen=True, slots=True)
class Timing:
    """What the adapter accepted: the adaptive mode (None: refused every ATAT), the ATST value
    (None: refused or not asked), the ECU's measured response time, and what it refused."""

    adaptive: int | None
    timeout_st: int | None
    ecu_response_ms: float | None
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return a short description for logs and status, e.g. ``ATAT2 ATST0A``."""
        parts = [
            f"ATAT{self.adaptive}"
            if self.adaptive is not None
            else "adapter's own adaptive timing",
            f"ATST{self.timeout_st:02X}" if self.timeout_st is not None else "adapter's own ATST",
        ]
        if self.refused:
            parts.append("refused " + ", ".join(self.refused))
        return " ".join(parts)


def measure_response_ms(link: Elm327Link) -> float | None:
    """Return the median round trip of a few ``0100`` requests in ms, None if none answered.

    Raises:
        LinkLostError: the port went away.
    """
    times = []
    for _ in range(_MEASURE_REQUESTS):
        started = time.monotonic()
        reply = link.request(b"0100", responses=link.responders if link.responders == 1 else None)
        if reply.kind == "ok":
            times.append((time.monotonic() - started) * 1000)
    return sorted(times)[len(times) // 2] if times else None


def timeout_for(response_ms: float) -> int:
    """Return the ATST value for an ECU answering in ``response_ms``: four times that, kept
    between 32 and 200 ms (never longer than the chip's default)."""
    wanted = min(max(4 * response_ms, _MIN_TIMEOUT_MS), _MAX_TIMEOUT_MS)
    return max(1, math.ceil(wanted / ST_STEP_MS))


def tune(link: Elm327Link, adaptive: int = 2, timeout_ms: int | None = None) -> Timing:
    """Ask the adapter on ``link`` for adaptive timing ``adaptive`` (then weaker ones) and a
    timeout of ``timeout_ms`` (None: derived from the ECU's measured response time); return
    what it accepted. Accepted commands are re-sent when the link re-applies its settings.

    Counts ``timing_refused`` per refused command; never raises for a refusal.

    Raises:
        LinkLostError: the port went away.
    """
    refused: list[str] = []
    accepted_adaptive: int | None = None
    for mode in range(adaptive, 0, -1):
        command = b"ATAT%d" % mode
        if link.at(command).kind == "ok":
            accepted_adaptive = mode
            link.timing_commands.append(command)
            break
        refused.append(command.decode())
        link.counters["timing_refused"] += 1
    if adaptive == 0:
        if link.at(b"ATAT0").kind == "ok":
            accepted_adaptive = 0
            link.timing_commands.append(b"ATAT0")
        else:
            refused.append("ATAT0")
            link.counters["timing_refused"] += 1
    response_ms = measure_response_ms(link)
    wanted_st: int | None = None
    if timeout_ms is not None:
        wanted_st = max(1, min(0xFF, math.ceil(timeout_ms / ST_STEP_MS)))
    elif response_ms is not None:
        wanted_st = timeout_for(response_ms)
    accepted_st: int | None = None
    if wanted_st is not None:
        command = b"ATST%02X" % wanted_st
        if link.at(command).kind == "ok":
            accepted_st = wanted_st
            link.timing_commands.append(command)
        else:
            refused.append(command.decode())
            link.counters["timing_refused"] += 1
    timing = Timing(accepted_adaptive, accepted_st, response_ms, refused)
    log.info("OBD adapter on %s: response timing %s", link.path, timing.summary())
    return timing
