"""Fast OBD polling: up to six mode 01 PIDs per request on CAN, as a :class:`PollStrategy`.

python-obd asks one PID per round trip; each round trip costs the ECU's response time and,
unless the adapter knows how many frames to expect, its timeout. This strategy packs the
PIDs the scheduler hands it into requests of up to six (on CAN protocols; one elsewhere),
tells the adapter how many frames to expect when one ECU answers, and checks and decodes
each PID's bytes separately (:mod:`fleetlink.edge.link.multi_pid`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fleetlink.edge.link.elm327 import Elm327Link, Reading
from fleetlink.edge.link.multi_pid import (
    LEFT_OUT,
    MAX_PIDS_PER_REQUEST,
    is_mode_01,
    max_pids,
    read_pids,
)
from fleetlink.edge.sources.obd_strategy import PollStrategy


class MultiPidPerRequest(PollStrategy):
    """Reads mode 01 PIDs several to a request; every other command alone.

    A PID an ECU leaves out of its answer to a shared request is asked again alone at once;
    when it answers that way it is asked alone from then on (``solo_pids``; some ECUs and
    adapters answer only the first PIDs of a request).
    """

    def __init__(self, limit: int = MAX_PIDS_PER_REQUEST) -> None:
        self.limit = limit
        self.solo_pids: set[str] = set()

    def batch_size(self, link: Elm327Link) -> int:
        return max_pids(link, self.limit)

    def read(self, link: Elm327Link, commands: Sequence[str]) -> Iterator[Reading]:
        size = self.batch_size(link)
        shared = [c for c in commands if is_mode_01(c) and c not in self.solo_pids]
        alone = [c for c in commands if c not in shared]
        for start in range(0, len(shared), size):
            if link.stalled:
                return
            for reading in read_pids(link, shared[start : start + size]):
                if reading.detail == LEFT_OUT and len(shared) > 1:
                    alone.append(reading.command)
                else:
                    yield reading
        for name in alone:
            if link.stalled:
                return
            if is_mode_01(name):
                reading = read_pids(link, [name])[0]
                if reading.kind == "ok" and name not in self.solo_pids:
                    self.solo_pids.add(name)
                    link.counters["solo_pids"] += 1
                yield reading
            else:
                yield link.query(name)
