"""When to read each OBD command: a per-command rate, and priorities when they compete.

Every command has its own period (``1 / rate_hz``) and priority. :meth:`PidSchedule.next_batch`
returns what to ask for next: the most urgent due command (highest priority, then most
overdue), joined by other due mode 01 PIDs up to the request's capacity, and, when room is
left, by mode 01 PIDs falling due within half their period (read a little early rather
than in a request of their own). Commands with a *group* (mode 22 commands: the ECU they are
sent to) are read one per request, but a due one is joined by the other due commands of its
group, so the adapter is pointed at each ECU once per round rather than once per command.
Taking one request at a time lets a high-priority PID that
falls due again go ahead of low-priority ones still waiting when the bus cannot keep up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetlink.firmware_profiles.schema import PidRate

_RANK = {"high": 0, "normal": 1, "low": 2}


@dataclass
class _Entry:
    command: str
    period_s: float
    rank: int
    next_due: float
    batchable: bool
    group: str | None


class PidSchedule:
    """The commands to poll and when each is due next (monotonic seconds).

    ``batchable(name)`` says whether a command may share a request (mode 01 PIDs); others
    (``ELM_VOLTAGE``) are always asked alone. ``group(name)`` (None: no groups) says which
    commands are read together, up to ``group_size`` of them. ``counters['rounds_late']``
    counts reads that came more than a period late (the bus could not keep up).
    """

    def __init__(
        self,
        rates: Sequence[PidRate],
        now: float,
        batchable: Callable[[str], bool],
        counters: Counter[str] | None = None,
        group: Callable[[str], str | None] | None = None,
        group_size: int = 8,
    ) -> None:
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.group_size = group_size
        self._entries = [
            _Entry(
                r.command,
                1 / r.rate_hz,
                _RANK[r.priority],
                now,
                batchable(r.command),
                group(r.command) if group else None,
            )
            for r in rates
        ]

    @property
    def commands(self) -> list[str]:
        """Return the scheduled commands, in the order given."""
        return [e.command for e in self._entries]

    def next_due(self) -> float | None:
        """Return when the next command falls due, None with nothing scheduled."""
        return min((e.next_due for e in self._entries), default=None)

    def restart(self, now: float) -> None:
        """Make every command due at ``now`` (after a stall or a reconnect)."""
        for entry in self._entries:
            entry.next_due = now

    def next_batch(self, now: float, size: int) -> list[str]:
        """Return the commands to read in the next request (at most ``size``; [] when none is
        due) and schedule each one's next read."""
        due = sorted(
            (e for e in self._entries if e.next_due <= now), key=lambda e: (e.rank, e.next_due)
        )
        if not due:
            return []
        first = due[0]
        batch = [first]
        if first.group is not None:
            batch += [e for e in due[1:] if e.group == first.group][: self.group_size - 1]
        elif first.batchable and size > 1:
            batch += [e for e in due[1:] if e.batchable][: size - 1]
            if len(batch) < size:
                soon = sorted(
                    (
                        e
                        for e in self._entries
                        if e.batchable and e.next_due > now and e.next_due - now <= e.period_s / 2
                    ),
                    key=lambda e: (e.next_due, e.rank),
                )
                batch += soon[: size - len(batch)]
        for entry in batch:
            entry.next_due += entry.period_s
            if entry.next_due < now:
                self.counters["rounds_late"] += 1
                entry.next_due = now + entry.period_s
        return [e.command for e in batch]
