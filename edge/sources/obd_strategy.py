"""How the OBD source reads the commands the scheduler hands it: the :class:`PollStrategy`
seam, and python-obd's plain way (one PID per round trip) as the simplest strategy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from fleetlink.edge.link.elm327 import Elm327Link, Reading
from fleetlink.edge.link.multi_pid import is_mode_01, read_pids


class PollStrategy(ABC):
    """How a batch of commands is read over an open, checked link."""

    def batch_size(self, link: Elm327Link) -> int:
        """Return how many commands one request may carry on ``link`` (the scheduler hands
        over at most that many at a time)."""
        return 1

    @abstractmethod
    def read(self, link: Elm327Link, commands: Sequence[str]) -> Iterator[Reading]:
        """Yield one :class:`Reading` per command as soon as it is read; never raise for a
        bad reply (only :class:`LinkLostError` when the port goes away)."""


class OnePidPerRequest(PollStrategy):
    """python-obd's plain loop: one request and one round trip per PID, each reply checked
    (with the response count when one ECU answers, as python-obd's fast mode does)."""

    def read(self, link: Elm327Link, commands: Sequence[str]) -> Iterator[Reading]:
        for name in commands:
            if link.stalled:
                return
            yield read_pids(link, [name])[0] if is_mode_01(name) else link.query(name)
