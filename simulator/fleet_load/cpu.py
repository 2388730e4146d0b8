"""CPU time of processes read from ``/proc/<pid>/stat`` (Linux), grouped by component."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of ``pid`` (0.0 once it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def pids_named(name: str) -> list[int]:
    """Return the pids whose command name (``/proc/<pid>/comm``) is ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def pids_running(*words: str) -> list[int]:
    """Return the pids whose command line contains every one of ``words``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(w in line for w in words):
                found.append(int(entry.name))
    return found


def snapshot(components: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """Return the CPU seconds used so far by each component's processes."""
    return {name: sum(cpu_seconds(p) for p in pids) for name, pids in components.items()}
