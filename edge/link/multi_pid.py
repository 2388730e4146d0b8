"""Several mode 01 PIDs in one request (``01 0C 0D 05 04 11 2F``), each value checked.

SAE J1979 lets a tester ask for up to six PIDs at once on ISO 15765-4 (CAN); the ECU answers
``41`` followed by each PID it supports and that PID's data bytes. The reply is checked as a
whole by :func:`~fleetlink.edge.link.replies.classify` (every PID asked for, lengths adding
up, from an OBD ECU); then each PID's bytes are decoded by python-obd's decoder for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetlink.edge.link.elm327 import Elm327Link, Reading
from fleetlink.edge.link.python_obd import Message, obd
from fleetlink.edge.link.replies import mode_01_values

MAX_PIDS_PER_REQUEST = 6
CAN_PROTOCOLS = frozenset({"6", "7", "8", "9"})
LEFT_OUT = "PID left out of the answer"
_SINGLE_FRAME_BYTES = 7
_FIRST_FRAME_BYTES = 6
_NEXT_FRAME_BYTES = 7


def is_mode_01(name: str) -> bool:
    """Return True for a python-obd command that is a mode 01 PID (``RPM``; not ``ELM_VOLTAGE``)."""
    command = obd.commands[name]
    return command.mode == 1 and command.pid is not None and command.bytes > 2


def max_pids(link: Elm327Link, limit: int = MAX_PIDS_PER_REQUEST) -> int:
    """Return how many PIDs one request may carry on ``link``'s protocol (1 off CAN)."""
    return min(limit, MAX_PIDS_PER_REQUEST) if link.protocol_id in CAN_PROTOCOLS else 1


def frames_for(names: Sequence[str]) -> int:
    """Return the CAN frames one ECU's answer to these PIDs takes (ISO-TP segmentation)."""
    size = 1 + sum(obd.commands[n].bytes - 1 for n in names)
    if size <= _SINGLE_FRAME_BYTES:
        return 1
    return 1 + math.ceil((size - _FIRST_FRAME_BYTES) / _NEXT_FRAME_BYTES)


def request_for(names: Sequence[str]) -> bytes:
    """Return the request bytes for mode 01 commands ``names`` (``b"010C0D"``)."""
    return b"01" + b"".join(b"%02X" % obd.commands[n].pid for n in names)


def read_pids(link: Elm327Link, names: Sequence[str]) -> list[Reading]:
    """Ask for the mode 01 commands ``names`` (at most :data:`MAX_PIDS_PER_REQUEST`) in one
    request and return one :class:`Reading` per name, in order.

    When one ECU answered at connect, the request carries the number of frames to expect,
    so the adapter answers without waiting out its timeout; an adapter that answers ``?``
    to that is asked again without it, and never with a count again on this link. A PID
    the ECU left out of its answer is a ``null`` reading with detail :data:`LEFT_OUT`
    (counted as ``pids_left_out``); a reply that is not ok makes every reading of this
    request that kind (the link counted it once).

    Raises:
        ValueError: more than six names, or one that is not a mode 01 PID.
        LinkLostError: the port went away.
    """
    if not 0 < len(names) <= MAX_PIDS_PER_REQUEST:
        raise ValueError(f"1 to {MAX_PIDS_PER_REQUEST} PIDs per request, not {len(names)}")
    for name in names:
        if not is_mode_01(name):
            raise ValueError(f"{name} is not a mode 01 PID")
    request = request_for(names)
    counted = link.responders == 1 and link.response_counts
    reply = link.request(request, responses=frames_for(names) if counted else None)
    if counted and reply.kind == "null" and reply.detail == "?":
        # some adapters refuse a request that carries a response count: ask without it
        link.response_counts = False
        link.counters["response_counts_refused"] += 1
        reply = link.request(request)
    if reply.kind != "ok":
        return [Reading(n, reply.time_ms, None, reply.kind, detail=reply.detail) for n in names]
    pids = [obd.commands[n].pid for n in names]
    found: dict[int, list[Message]] = {}
    for message in reply.messages:
        for pid, data in mode_01_values(message.data, pids).items():
            single = Message(message.frames)
            single.ecu = message.ecu
            single.data = bytearray((0x41, pid)) + data
            found.setdefault(pid, []).append(single)
    readings = []
    for name, pid in zip(names, pids, strict=True):
        if pid in found:
            readings.append(link.decode(name, found[pid], reply.time_ms))
        else:
            link.counters["pids_left_out"] += 1
            readings.append(Reading(name, reply.time_ms, None, "null", detail=LEFT_OUT))
    return readings
